/* The toaster's terminal screen (ncurses): the toaster, the DM state and the reboot prompt.
 * Plain ASCII, so it reads the same in any terminal and in tmux capture-pane. */
#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "toaster.h"

#define LABEL_COL 3
#define VALUE_COL 18
#define BAR_WIDTH 30

void toaster_screen_open(void)
{
    initscr();
    cbreak();
    noecho();
    nodelay(stdscr, TRUE); /* keys are read when poll() says stdin is ready */
    keypad(stdscr, TRUE);
    curs_set(0);
}

void toaster_screen_close(void)
{
    endwin();
}

/* Formats into one line, clipped at the right edge rather than wrapped onto the next row. */
__attribute__((format(printf, 4, 5))) static void put(int row, int col, attr_t attr,
                                                      const char *fmt, ...)
{
    if (row >= LINES || col >= COLS)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    attron(attr);
    mvaddnstr(row, col, line, COLS - col);
    attroff(attr);
}

static void field(int row, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void field(int row, const char *label, const char *fmt, ...)
{
    char value[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    put(row, LABEL_COL, A_NORMAL, "%s", label);
    put(row, VALUE_COL, A_BOLD, "%s", value);
}

static const char *connection_name(iotdm_connection_state s)
{
    static const char *const names[] = {"disconnected", "connecting", "connected", "refused"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "?";
}

static void draw_header(toaster_app *app)
{
    put(0, 1, A_BOLD, "iotdm Toaster %s", TOASTER_VERSION);
    put(0, 22, A_NORMAL, "device %s on %s", app->device_id, app->host);
    const char *conn = connection_name(app->conn);
    put(0, COLS - (int)strlen(conn) - 2, A_REVERSE, "%s", conn);
    mvhline(1, 0, '-', COLS);
}

static int draw_toaster(toaster_app *app, int row, int64_t now)
{
    toaster_model *t = &app->toaster;
    put(row++, 1, A_UNDERLINE, "TOASTER (component \"%s\")", TOASTER_COMPONENT);
    if (t->toasting) {
        int p = toaster_progress(app, now);
        char bar[BAR_WIDTH + 1];
        int filled = p * BAR_WIDTH / 100;
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        field(row++, "State", "toasting  [%s] %3d %%", bar, p);
    } else {
        field(row++, "State", "idle");
    }
    field(row++, "Darkness", "%d of 5", t->darkness);
    field(row++, "Temperature", "%.1f C", t->temperature);
    field(row++, "Toasts made", "%u", t->toasts_made);
    field(row++, "Reboots", "%s",
          t->toasting ? "refused while toasting" : "you are asked before the device reboots");
    return row + 1;
}

static int draw_dm(toaster_app *app, int row)
{
    toaster_dm_view *v = &app->dm;
    put(row++, 1, A_UNDERLINE, "DEVICE MANAGEMENT (component \"dm\", through iotdm-configd)");
    field(row++, "Connection", "%s%s%s", connection_name(app->conn),
          app->conn_reason[0] ? ": " : "", app->conn_reason);
    field(row++, "Time zone", "%s", v->time_zone[0] ? v->time_zone : "?");
    field(row++, "Local time", "%s", v->local_time[0] ? v->local_time : "?");
    field(row++, "Last boot", "%s", v->boot_time[0] ? v->boot_time : "?");
    field(row++, "Reboot command", "%s", v->reboot_cmd[0] ? v->reboot_cmd : "none yet");
    iotdm_outbox_stats s;
    iotdm_client_outbox_stats(app->client, &s);
    field(row++, "Outbox", "%zu reported, %zu telemetry waiting", s.reported_pending,
          s.telemetry_pending);
    row++;
    put(row++, 1, A_UNDERLINE, "DM ACTIVITY");
    unsigned first = v->nevents > TOASTER_EVENTS ? v->nevents - TOASTER_EVENTS : 0;
    for (unsigned i = first; i < v->nevents; i++)
        put(row++, LABEL_COL, A_NORMAL, "%s", v->events[i % TOASTER_EVENTS]);
    return row;
}

static void draw_prompt(toaster_app *app, int64_t now)
{
    int w = 52, h = 7;
    int top = (LINES - h) / 2, left = (COLS - w) / 2;
    if (top < 0 || left < 0)
        top = left = 0;
    for (int r = top; r < top + h; r++)
        mvhline(r, left, ' ', w);
    attron(A_BOLD);
    mvhline(top, left, '-', w);
    mvhline(top + h - 1, left, '-', w);
    mvvline(top, left, '|', h);
    mvvline(top, left + w - 1, '|', h);
    mvaddch(top, left, '+');
    mvaddch(top, left + w - 1, '+');
    mvaddch(top + h - 1, left, '+');
    mvaddch(top + h - 1, left + w - 1, '+');
    attroff(A_BOLD);
    int64_t left_s = (app->prompt.deadline_ms - now + 999) / 1000;
    put(top + 1, left + 3, A_NORMAL, "The hub asks to reboot this device now.");
    put(top + 3, left + 3, A_BOLD | A_REVERSE, " Allow reboot? [y/n] ");
    put(top + 5, left + 3, A_NORMAL, "No answer in %lld s means no.", (long long)left_s);
}

void toaster_screen_draw(toaster_app *app)
{
    int64_t now = toaster_mono_ms();
    erase();
    draw_header(app);
    int row = draw_toaster(app, 2, now);
    draw_dm(app, row);
    mvhline(LINES - 3, 0, '-', COLS);
    put(LINES - 2, 1, A_NORMAL, "%s", app->status);
    put(LINES - 1, 1, A_BOLD, "%s",
        app->prompt.active ? "[y] allow the reboot   [n] refuse it   [t] toast (refuses it)"
                           : "[t] toast   [q] quit");
    if (app->prompt.active)
        draw_prompt(app, now);
    refresh();
}

void toaster_status(toaster_app *app, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(app->status, sizeof app->status, fmt, ap);
    va_end(ap);
}
