// C++ against libiotdm.so: every public header compiles as C++ on its own (CMake generates one
// translation unit per header next to this one), and a function of each header links from C++,
// which needs each header's extern "C". Versioned structs are set up with their _init functions.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "iotdm/iotdm.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static const char key[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

static void exercise_client(const std::string &dir)
{
    iotdm_client_config cfg;
    iotdm_client_config_init(&cfg);
    CHECK(cfg.struct_size == sizeof cfg);
    cfg.host = "hub.example.net";
    cfg.device_id = "cxx-device";
    cfg.device_key = key;
    cfg.state_dir = dir.c_str();
    iotdm_client *client = nullptr;
    CHECK(iotdm_client_new(&cfg, &client) == IOTDM_OK);
    if (!client)
        return;
    iotdm_property_handler handler;
    iotdm_property_handler_init(&handler);
    handler.component = "cxx";
    handler.property = "setting";
    handler.on_desired = [](void *, const char *, int64_t, iotdm_ack *ack) { ack->code = 200; };
    CHECK(iotdm_handler_add(client, &handler) == IOTDM_OK);
    CHECK(iotdm_method_register(client, "echo",
                                [](void *, const char *, const char *, char **) { return 200; },
                                nullptr) == IOTDM_OK);
    CHECK(iotdm_twin_report(client, "{\"language\":\"C++\"}") == IOTDM_OK);
    iotdm_property prop = {"lang", "cxx"};
    CHECK(iotdm_telemetry_send(client, "{}", 2, &prop, 1, nullptr) == IOTDM_OK);
    iotdm_outbox_stats stats;
    iotdm_client_outbox_stats(client, &stats);
    CHECK(stats.reported_pending == 1 && stats.telemetry_pending == 1);
    iotdm_client_free(client);
}

int main()
{
    CHECK(std::string(iotdm_result_name(IOTDM_E_MALFORMED)) == "IOTDM_E_MALFORMED");
    CHECK(std::string(iotdm_result_message(IOTDM_OK)).size() > 0);
    char derived[64];
    CHECK(iotdm_provision_derive_key(key, "cxx-device", derived, sizeof derived) == IOTDM_OK);
    iotdm_provision_config pcfg;
    iotdm_provision_config_init(&pcfg);
    CHECK(pcfg.struct_size == sizeof pcfg && pcfg.endpoint == nullptr);

    const char *tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp ? tmp : "/tmp") + "/iotdm-cxx-XXXXXX";
    CHECK(mkdtemp(dir.data()) != nullptr);
    exercise_client(dir);
    std::filesystem::remove_all(dir);
    if (failures)
        std::fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
