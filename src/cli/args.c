/* Command-line options: parsing (options anywhere, --opt=value or --opt value), help, JSON args. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define HELP_COLUMN 31
#define HELP_WIDTH  100

/* Set while probing (e.g. fetching models for help), when a failure has a fallback. */
static bool quiet;

void cli_set_quiet(bool on)
{
    quiet = on;
}

void cli_error(const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("iotdm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int find_opt(const cli_cmd *cmd, const char *name, size_t len)
{
    for (size_t i = 0; i < cmd->nopts; i++)
        if (strlen(cmd->opts[i].name) == len && memcmp(cmd->opts[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

static bool is_bool_text(const char *s)
{
    return !strcmp(s, "true") || !strcmp(s, "false");
}

static int usage_error(const char *prog, const char *what, const char *arg)
{
    cli_error("%s '%s' (see '%s --help')", what, arg, prog);
    return CLI_EXIT_USAGE;
}

/* One "--name[=value]" at argv[*i]; may consume the next argument as its value. */
static int parse_option(const char *prog, const cli_cmd *cmd, int argc, char **argv, int *i,
                        cli_args *out)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    int k = find_opt(cmd, arg, len);
    if (k < 0)
        return usage_error(prog, "unknown option", argv[*i]);
    const cli_opt *o = &cmd->opts[k];
    const char *value = NULL;
    switch (o->kind) {
    case CLI_OPT_FLAG:
        if (eq)
            return usage_error(prog, "this option takes no value:", argv[*i]);
        value = "true";
        break;
    case CLI_OPT_BOOL:
        if (eq)
            value = eq + 1;
        else if (*i + 1 < argc && is_bool_text(argv[*i + 1]))
            value = argv[++*i];
        else
            value = "true";
        if (!is_bool_text(value))
            return usage_error(prog, "expected true or false:", argv[*i]);
        break;
    case CLI_OPT_VALUE:
        if (eq)
            value = eq + 1;
        else if (*i + 1 < argc)
            value = argv[++*i];
        else
            return usage_error(prog, "missing value for", argv[*i]);
        break;
    }
    out->values[k] = value;
    return CLI_EXIT_OK;
}

int cli_parse(const char *prog, const cli_cmd *cmd, int argc, char **argv, cli_args *out)
{
    memset(out, 0, sizeof *out);
    out->cmd = cmd;
    if (cmd->nopts > CLI_MAX_OPTS) {
        cli_error("%s: too many options", prog);
        return CLI_EXIT_ERROR;
    }
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            cli_print_cmd_help(stdout, prog, cmd);
            return CLI_HELP_SHOWN;
        }
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = true;
        } else if (!only_pos && a[0] == '-' && a[1] == '-') {
            int r = parse_option(prog, cmd, argc, argv, &i, out);
            if (r != CLI_EXIT_OK)
                return r;
        } else if (!only_pos && a[0] == '-' && a[1] != '\0') {
            return usage_error(prog, "unknown option", a);
        } else {
            if (out->npos >= cmd->max_pos || out->npos >= CLI_MAX_POS)
                return usage_error(prog, "unexpected argument", a);
            out->pos[out->npos++] = a;
        }
    }
    for (size_t k = 0; k < cmd->nopts; k++) {
        if (cmd->opts[k].required && !out->values[k]) {
            cli_error("missing --%s (see '%s --help')", cmd->opts[k].name, prog);
            return CLI_EXIT_USAGE;
        }
    }
    if (out->npos < cmd->min_pos) {
        cli_error("missing %s (see '%s --help')", cmd->positional, prog);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

const char *cli_arg(const cli_args *args, const char *name)
{
    int k = find_opt(args->cmd, name, strlen(name));
    return k < 0 ? NULL : args->values[k];
}

bool cli_flag(const cli_args *args, const char *name)
{
    const char *v = cli_arg(args, name);
    return v && !strcmp(v, "true");
}

int cli_arg_int(const cli_args *args, const char *name, long long min, long long max,
                long long *out)
{
    const char *v = cli_arg(args, name);
    if (!v)
        return CLI_EXIT_OK;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        cli_error("--%s: expected an integer from %lld to %lld, got '%s'", name, min, max, v);
        return CLI_EXIT_USAGE;
    }
    *out = n;
    return CLI_EXIT_OK;
}

json_t *cli_json_arg(const char *option, const char *text)
{
    json_error_t err;
    json_t *j;
    if (text[0] == '@')
        j = json_load_file(text + 1, JSON_DECODE_ANY, &err);
    else
        j = json_loads(text, JSON_DECODE_ANY, &err);
    if (!j) {
        if (text[0] == '@')
            cli_error("--%s: %s: %s (line %d, column %d)", option, text + 1, err.text, err.line,
                      err.column);
        else
            cli_error("--%s: invalid JSON: %s (column %d); use @FILE to read it from a file",
                      option, err.text, err.column);
    }
    return j;
}

/* Writes text word-wrapped at HELP_WIDTH; the cursor is at column col, continuation lines are
 * indented to indent. */
static void print_wrapped(FILE *out, const char *text, size_t col, size_t indent)
{
    const char *p = text;
    while (*p) {
        size_t word = strcspn(p, " ");
        if (col > indent && col + 1 + word > HELP_WIDTH) {
            fprintf(out, "\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fwrite(p, 1, word, out);
        col += word;
        p += word;
        while (*p == ' ')
            p++;
    }
    fputc('\n', out);
}

static void print_opt_line(FILE *out, const cli_opt *o)
{
    char left[128];
    const char *meta = o->metavar ? o->metavar : "VALUE";
    if (o->kind == CLI_OPT_VALUE)
        snprintf(left, sizeof left, "  --%s %s", o->name, meta);
    else if (o->kind == CLI_OPT_BOOL)
        snprintf(left, sizeof left, "  --%s [true|false]", o->name);
    else
        snprintf(left, sizeof left, "  --%s", o->name);
    size_t n = strlen(left);
    fputs(left, out);
    if (n + 2 > HELP_COLUMN)
        fprintf(out, "\n%*s", HELP_COLUMN, "");
    else
        fprintf(out, "%*s", (int)(HELP_COLUMN - n), "");
    char help[600];
    snprintf(help, sizeof help, "%s%s", o->help ? o->help : "", o->required ? " (required)" : "");
    print_wrapped(out, help, HELP_COLUMN, HELP_COLUMN);
}

void cli_print_cmd_help(FILE *out, const char *prog, const cli_cmd *cmd)
{
    fprintf(out, "Usage: %s", prog);
    for (size_t k = 0; k < cmd->nopts; k++)
        if (cmd->opts[k].required)
            fprintf(out, " --%s %s", cmd->opts[k].name,
                    cmd->opts[k].metavar ? cmd->opts[k].metavar : "VALUE");
    if (cmd->nopts)
        fputs(" [options]", out);
    if (cmd->positional)
        fprintf(out, " %s", cmd->positional);
    fputs("\n\n", out);
    print_wrapped(out, cmd->summary, 0, 0);
    fputs("\nOptions:\n", out);
    for (size_t k = 0; k < cmd->nopts; k++)
        print_opt_line(out, &cmd->opts[k]);
    fprintf(out, "  -h, --help%*sShow this help\n", HELP_COLUMN - 12, "");
    fputs("\nGlobal options: --json, --login CS, --login-file FILE, --ca FILE, --models-dir DIR "
          "(see 'iotdm --help').\n",
          out);
}

void cli_print_group_help(FILE *out, const char *prog, const cli_group *g)
{
    fprintf(out, "Usage: %s <command> [options]\n\n%s\n\nCommands:\n", prog, g->summary);
    for (size_t i = 0; i < g->ncmds; i++)
        fprintf(out, "  %-22s %s\n", g->cmds[i].name, g->cmds[i].summary);
    fprintf(out, "\nRun '%s <command> --help' for a command's options.\n", prog);
}
