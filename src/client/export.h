/* Marks the functions libiotdm.so exports; everything else is hidden (-fvisibility=hidden). */
#ifndef IOTDM_CLIENT_EXPORT_H
#define IOTDM_CLIENT_EXPORT_H

#define IOTDM_API __attribute__((visibility("default")))

#endif
