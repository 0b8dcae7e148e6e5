/* The dm command group, generated from the DTDL model: commands, options and value building. */
#ifndef IOTDM_CLI_DM_H
#define IOTDM_CLI_DM_H

#include "cli/cli.h"

#define DM_COMPONENT  "dm"
#define DM_MAX_DEPTH  8
#define DM_MAX_FIELDS 48
#define DM_MAX_CMDS   64
#define DM_NAME_MAX   64

typedef enum {
    DM_T_STRING,
    DM_T_BOOL,
    DM_T_INT,
    DM_T_DOUBLE,
    DM_T_ENUM,
    DM_T_ARRAY,
    DM_T_JSON, /* anything the flattening does not cover: given as JSON */
    DM_T_KEY,  /* selects a Map entry: names a member, has no value of its own */
} dm_type;

/* One step of a field's path inside the value: a member name, or the value of a key option. */
typedef struct {
    char name[DM_NAME_MAX];
    int key_field; /* index of the DM_T_KEY field naming this member, or -1 */
} dm_seg;

typedef struct {
    char option[DM_NAME_MAX]; /* kebab case, without "--" */
    char help[160];
    char metavar[40];
    dm_type type;
    dm_type elem_type;         /* DM_T_ARRAY */
    const json_t *enum_values; /* DM_T_ENUM and enum elements: the DTDL enumValues (borrowed) */
    dm_seg segs[DM_MAX_DEPTH];
    size_t nsegs; /* 0: the field is the whole value */
} dm_field;

typedef enum { DM_KIND_SET, DM_KIND_COMMAND, DM_KIND_STATUS } dm_kind;

typedef struct {
    char name[DM_NAME_MAX]; /* the subcommand */
    char brief[96];         /* one line for the command list */
    char summary[320];      /* the whole description, for --help */
    dm_kind kind;
    const char *target; /* DTDL property or command name (borrowed from the model) */
    dm_field fields[DM_MAX_FIELDS];
    size_t nfields;
    const char *preset_option, *preset_value; /* aliases: a value given unless overridden */
    cli_opt opts[CLI_MAX_OPTS];
    cli_cmd cmd;
} dm_cmd;

/* The generated group: owns its commands; the model stays referenced. */
typedef struct {
    json_t *models; /* array of interfaces */
    const json_t *iface;
    dm_cmd *cmds;
    size_t ncmds;
} dm_group;

/* ---- dm_model.c */

/* Loads the models (--models-dir, the hub's /iotdm/models, then the built-in folder) and
 * generates the commands. quiet: for help and completion, where any source will do. */
int dm_group_load(cli_ctx *ctx, bool quiet, dm_group *out);
void dm_group_free(dm_group *g);

/* Generates commands from an array of DTDL interfaces (exposed for unit tests). */
int dm_group_build(json_t *models, dm_group *out);

/* The DTDL type test: "@type" is a string or an array of strings. */
bool dm_is_type(const json_t *entry, const char *type);

/* "a|b|c": the enumValues of a DTDL Enum. */
void dm_enum_list(const json_t *enums, char *out, size_t cap);

/* kebab-case of a camelCase name ("timeInfo" → "time-info"). */
void dm_kebab(const char *name, char *out, size_t cap);

/* Builds the property value or command payload from the parsed options. Returns an exit code;
 * *out is NULL when no field was given. */
int dm_build_value(const dm_cmd *c, const cli_args *a, json_t **out);

/* ---- dm_status.c */

int dm_status_run(cli_ctx *ctx, const dm_group *g, const char *device_id);

#endif
