/* iotdm_result: the one result type of libiotdm and every iotdm program. */
#ifndef IOTDM_RESULT_H
#define IOTDM_RESULT_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 0 is success; negative values are errors. Plain errno values (as -errno) are used where they fit;
 * the codes below are ours and sit well away from errno's range. */
typedef int iotdm_result;

#define IOTDM_OK 0

/* Marks a function whose result must not be dropped: GCC and clang warn at a call that ignores
 * it (every function returning iotdm_result carries it, and so do function pointers to them). */
#if defined(__GNUC__) || defined(__clang__)
#define IOTDM_NODISCARD __attribute__((warn_unused_result))
#else
#define IOTDM_NODISCARD
#endif

/* Drops a result on purpose. A (void) cast does not silence warn_unused_result in GCC; negating
 * the value first uses it. Every use says, next to it, why the result does not matter there. */
#define IOTDM_IGNORE(expr) ((void)!(expr))

/* X(name, value, message). One table gives the constants, their names and their messages. */
#define IOTDM_RESULT_TABLE(X)                                                                      \
    X(IOTDM_E_MALFORMED, -10001, "malformed input")                                                \
    X(IOTDM_E_TOO_LARGE, -10002, "input exceeds a limit")                                          \
    X(IOTDM_E_UNAUTHORIZED, -10003, "not authorized")                                              \
    X(IOTDM_E_FORBIDDEN, -10004, "operation not permitted for this identity")                      \
    X(IOTDM_E_NOT_FOUND, -10005, "not found")                                                      \
    X(IOTDM_E_EXISTS, -10006, "already exists")                                                    \
    X(IOTDM_E_PRECONDITION, -10007, "precondition failed (etag or version mismatch)")              \
    X(IOTDM_E_TOO_DEEP, -10008, "nesting too deep")                                                \
    X(IOTDM_E_NOT_ONLINE, -10009, "device not online")                                             \
    X(IOTDM_E_TIMEOUT, -10010, "timed out")                                                        \
    X(IOTDM_E_THROTTLED, -10011, "throttled")                                                      \
    X(IOTDM_E_QUOTA, -10012, "quota exceeded")                                                     \
    X(IOTDM_E_STORAGE, -10013, "storage failure")                                                  \
    X(IOTDM_E_PROTOCOL, -10014, "protocol violation")                                              \
    X(IOTDM_E_EXPIRED, -10015, "credential expired")                                               \
    X(IOTDM_E_DISABLED, -10016, "identity disabled")                                               \
    X(IOTDM_E_INCOMPLETE, -10017, "more input needed")                                             \
    X(IOTDM_E_UNSUPPORTED, -10018, "not supported")                                                \
    X(IOTDM_E_INTERNAL, -10019, "internal error")                                                  \
    X(IOTDM_E_CONFLICT, -10020, "a concurrent write conflicted; try again")

enum {
#define IOTDM_RESULT_ENUM(name, value, msg) name = (value),
    IOTDM_RESULT_TABLE(IOTDM_RESULT_ENUM)
#undef IOTDM_RESULT_ENUM
};

/* A readable message for any result (ours or -errno). Never NULL; static storage. */
const char *iotdm_result_message(iotdm_result r);

/* The symbolic name ("IOTDM_E_MALFORMED", "ENOENT", "OK"). Never NULL; static storage. */
const char *iotdm_result_name(iotdm_result r);

#ifdef __cplusplus
}
#endif

#endif
