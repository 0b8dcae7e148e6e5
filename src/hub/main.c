/* iotdm-hub: an Azure-IoT-Hub-compatible hub on embedded SQLite. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "hub/config.h"
#include "hub/hub.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: iotdm-hub --data-dir DIR [options]\n"
            "\n"
            "An Azure-IoT-Hub-compatible hub: device MQTT over TLS, the service REST API over\n"
            "HTTPS, and the dashboard, on an embedded SQLite database in DIR.\n"
            "\n"
            "On first start it creates DIR/hub.db, a local CA (DIR/ca.pem) and a server\n"
            "certificate, the shared access policies, and DIR/owner.connstr with the\n"
            "iothubowner connection string. Later starts reuse all of it.\n"
            "\n"
            "Options (flags override the config file):\n"
            "  --data-dir DIR        where everything is kept (required)\n"
            "  --store LOCATION      the database: DIR/hub.db (SQLite, the default) or a\n"
            "                        postgresql://user@host:port/db URL, which several hub\n"
            "                        nodes can share (docs/cluster.md)\n"
            "  --node-id NAME        this node's name in a cluster (default: host name,\n"
            "                        listen address and MQTT port)\n"
            "  --config FILE         key = value file; keys are the long option names\n"
            "  --hostname NAME       the hub's host name, as devices and SDKs use it\n"
            "                        (default: the listen address, or localhost)\n"
            "  --listen ADDR         address to listen on (default 127.0.0.1)\n"
            "  --mqtt-port PORT      device MQTT over TLS (default 8883)\n"
            "  --https-port PORT     service API and dashboard over HTTPS (default 443)\n"
            "  --telemetry-max-mb N  retained telemetry and events, in MiB of database rows\n"
            "                        (bodies, properties and row overhead; default 256)\n"
            "  --telemetry-max-age-hours N  retained telemetry age (default 168)\n"
            "  --web-dir DIR         dashboard files (default: the installed ones)\n"
            "  --models-dir DIR      DTDL interfaces served at /iotdm/models\n"
            "  --id-scope SCOPE      DPS ID scope (default: generated once, kept in DIR/idscope)\n"
            "  --threads N           event loops (default: one per CPU)\n"
            "  --log-level LEVEL     error, warn, info or debug (default info)\n"
            "  -h, --help            this text\n"
            "\n"
            "Limits against hostile or broken peers (docs/hub.md \"Connection limits\"):\n"
            "  --max-connections N         MQTT + HTTPS connections (default: what the\n"
            "                              descriptor limit allows)\n"
            "  --max-pending-per-source N  unauthenticated connections per address (128)\n"
            "  --handshake-timeout S       TLS + CONNECT or first request headers (10)\n"
            "  --header-timeout S          one HTTP request's headers (10)\n"
            "  --request-timeout S         one HTTP request's body (60)\n"
            "  --upload-timeout S          one upload's body (600)\n"
            "  --idle-timeout S            an idle HTTPS connection (120)\n"
            "  --output-limit BYTES        unsent output above which a peer is not read\n"
            "                              (1048576)\n"
            "  --stall-timeout S           output not read this long closes (30)\n"
            "  --max-inflight N            a connection's requests waiting for storage (32)\n"
            "  --body-memory-mb N          request bodies in memory per loop (256)\n"
            "  --upload-max-mb N           one file upload (16)\n"
            "  --upload-quota-mb N         all uploads of one device (256)\n"
            "  --upload-max-files N        uploads kept per device (1000)\n"
            "  --upload-retention-days N   finished uploads are deleted after (30)\n"
            "  --disk-reserve-mb N         free space below which new data is refused,\n"
            "                              connections and reads go on (256; 0: none)\n"
            "\n"
            "SIGTERM or SIGINT stops the hub cleanly.\n");
}

int main(int argc, char **argv)
{
    hub_config cfg;
    hub_config_defaults(&cfg);
    char error[512];
    if (hub_config_from_args(&cfg, argc, argv, error, sizeof error) < 0) {
        if (strcmp(error, "help") == 0) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "iotdm-hub: %s\n\n", error);
        usage(stderr);
        return 2;
    }
    hub h;
    iotdm_result r = hub_init(&h, &cfg);
    if (r == IOTDM_OK)
        r = hub_run(&h);
    hub_deinit(&h);
    if (r < 0) {
        log_error("hub", "exiting: %s", iotdm_result_message(r));
        return 1;
    }
    log_info("hub", "stopped");
    return 0;
}
