/* The toaster's reboot veto: never while toasting; when idle, the person at the toaster decides.
 *
 * libiotdm asks synchronously (iotdm_reboot_veto_fn returns the answer), and the reboot
 * capability asks from its timer, which the toaster's own loop runs. So the callback runs a
 * nested round of that same loop until a key answers: the hub connection, the telemetry and the
 * screen keep going meanwhile, and the capabilities' timers are held back so the reboot pipeline
 * is never entered twice. An unanswered prompt is a no, as is starting a toast while asked. */
#include <curses.h>
#include <stdio.h>

#include "common/log.h"
#include "toaster.h"

static void note(toaster_app *app, const char *outcome)
{
    snprintf(app->dm.reboot_cmd, sizeof app->dm.reboot_cmd, "%s", outcome);
    toaster_dm_event(app, "dm*reboot: %s", outcome);
    log_info("toaster", "reboot request: %s", outcome);
}

/* 1: allow, 0: refuse, -1: not an answer. */
static int answer_of(toaster_app *app, int key)
{
    switch (key) {
    case 'y':
    case 'Y':
        return 1;
    case 'n':
    case 'N':
    case 27: /* Esc */
        return 0;
    case 't':
        /* Already toasting (IOTDM_E_EXISTS) ends the question the same way: no reboot. */
        IOTDM_IGNORE(toaster_start_toasting(app, "key t"));
        return 0;
    case 'q':
        app->quit = true;
        return 0;
    default:
        return -1;
    }
}

static bool ask(toaster_app *app)
{
    app->prompt.active = true;
    app->prompt.deadline_ms = toaster_mono_ms() + (int64_t)app->opt.prompt_timeout_s * 1000;
    note(app, "pending: asking the person at the toaster");
    toaster_status(app, "the hub asks to reboot the device: answer y or n");
    beep();
    int answer = -1;
    const char *why = "";
    while (answer < 0) {
        int64_t left = app->prompt.deadline_ms - toaster_mono_ms();
        if (left <= 0) {
            answer = 0;
            why = " (no answer in time)";
            break;
        }
        /* Wake at least once a second so the countdown on screen moves. */
        int key = toaster_loop_once(app, left < 1000 ? (int)left : 1000, true);
        answer = answer_of(app, key);
        if (answer < 0 && app->toaster.toasting) {
            answer = 0; /* the hub started a toast (toaster*toast) while we were asking */
            why = " (toasting started)";
        } else if (answer < 0 && app->quit) {
            answer = 0; /* SIGTERM or Ctrl-C: nobody is left to answer */
            why = " (quitting)";
        }
    }
    app->prompt.active = false;
    if (answer == 1) {
        note(app, "allowed by the person; rebooting");
        toaster_status(app, "reboot allowed");
    } else {
        char outcome[TOASTER_EVENT_CHARS];
        snprintf(outcome, sizeof outcome, "rejectedByApp: refused%s", why);
        note(app, outcome);
        toaster_status(app, "reboot refused%s", why);
    }
    toaster_screen_draw(app);
    return answer == 1;
}

bool toaster_reboot_veto(void *ctx)
{
    toaster_app *app = ctx;
    if (app->toaster.toasting) {
        note(app, "rejectedByApp: vetoed while toasting");
        return false;
    }
    /* Only the toaster's own loop may wait for a key: someone asking from inside libiotdm's
     * dispatch (or a second ask while one is open) gets a no rather than a re-entered loop. */
    if (app->prompt.active || app->in_client_process) {
        note(app, "rejectedByApp: busy asking");
        return false;
    }
    return ask(app);
}
