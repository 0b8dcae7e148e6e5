/* The Toaster sample: one foreground app that embeds libiotdm, shares its hub connection with the
 * built-in DM capabilities, and decides about reboots itself. Shared state of its parts. */
#ifndef IOTDM_TOASTER_H
#define IOTDM_TOASTER_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/configd_link.h"
#include "capabilities/capabilities.h"
#include "iotdm/iotdm.h"

#define TOASTER_COMPONENT   "toaster"
#define TOASTER_MODEL_ID    "dtmi:iotdm:example:ToasterDevice;1"
#define TOASTER_VERSION     "0.1.0"
#define TOASTER_EVENTS      6 /* DM activity lines kept for the screen */
#define TOASTER_EVENT_CHARS 96

typedef struct {
    const char *connection_string;
    const char *ca_file;
    const char *state_dir;
    const char *configd_socket;
    const char *log_file; /* stderr goes here: the terminal belongs to ncurses */
    int prompt_timeout_s; /* an unanswered "Allow reboot?" is a no after this long */
} toaster_options;

typedef struct {
    char time_zone[64];
    char local_time[40];
    char boot_time[40];
    char reboot_cmd[TOASTER_EVENT_CHARS]; /* the last dm*reboot outcome seen by the app */
    char events[TOASTER_EVENTS][TOASTER_EVENT_CHARS];
    unsigned nevents; /* total ever added; the ring holds the last TOASTER_EVENTS */
    bool refresh;     /* a configd change happened: read the state again soon */
    int64_t next_refresh_ms;
} toaster_dm_view;

typedef struct {
    bool toasting;
    int darkness; /* 1 (light) .. 5 (dark); the writable property toaster.darkness */
    int64_t started_ms, done_ms;
    double temperature;
    unsigned toasts_made;
    int64_t next_telemetry_ms;
    int64_t last_step_ms;
    char ack_text[128];
    char value_text[32];
} toaster_model;

typedef struct {
    bool active;
    int64_t deadline_ms;
} toaster_prompt;

typedef struct toaster_app {
    toaster_options opt;
    char host[256], device_id[129], device_key[128];
    iotdm_client *client;
    agent_configd configd;
    cap_env env;
    cap_set caps;
    iotdm_connection_state conn;
    char conn_reason[96];
    toaster_model toaster;
    toaster_dm_view dm;
    toaster_prompt prompt;
    char status[TOASTER_EVENT_CHARS]; /* the bottom status line */
    bool quit;
    int64_t exit_at_ms; /* after a simulated reboot: leave once drained, or at this time */
    bool in_client_process;
    bool more_input;
} toaster_app;

/* Monotonic milliseconds for the app's own timers. */
int64_t toaster_mono_ms(void);

/* toaster.c: the appliance, its PnP component and its telemetry. */
IOTDM_NODISCARD iotdm_result toaster_model_start(toaster_app *app);
IOTDM_NODISCARD iotdm_result toaster_start_toasting(toaster_app *app, const char *why);
/* Advances the simulation (heat, progress, done) and sends telemetry when due. */
void toaster_model_step(toaster_app *app, int64_t now_ms);
int64_t toaster_model_next_due_ms(toaster_app *app);
/* 0..100 while toasting. */
int toaster_progress(const toaster_app *app, int64_t now_ms);

/* dm_view.c: the DM state the screen shows, read through configd, and the configd line that
 * notes every change the capabilities make. */
IOTDM_NODISCARD iotdm_result toaster_configd_call(void *ctx, const char *op, json_t *args,
                                                  json_t **out_result, char *err, size_t err_cap);
IOTDM_NODISCARD iotdm_result toaster_configd_call_fds(void *ctx, const char *op, json_t *args,
                                                      const int *fds, size_t nfds,
                                                      json_t **out_result, char *err,
                                                      size_t err_cap);
void toaster_dm_event(toaster_app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void toaster_dm_refresh(toaster_app *app, int64_t now_ms);
int64_t toaster_dm_next_due_ms(toaster_app *app);

/* screen.c: ncurses. */
void toaster_screen_open(void);
void toaster_screen_close(void);
void toaster_screen_draw(toaster_app *app);
void toaster_status(toaster_app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* veto.c: the reboot veto (asks the person when idle). */
bool toaster_reboot_veto(void *ctx);

/* main.c: one round of the event loop: waits at most max_ms for the hub, the keyboard or a timer,
 * then services what is ready. Returns the key pressed, or -1. nested: called from inside the
 * veto prompt, where the capabilities' timers must not run again. */
int toaster_loop_once(toaster_app *app, int max_ms, bool nested);

#endif
