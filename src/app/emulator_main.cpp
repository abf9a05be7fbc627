// mde-emulator: Microsoft's token endpoint and the Defender for Endpoint alerts API,
// emulated on loopback for tests, the demo, benchmarks, and trying mdecollect without Azure.
// Also Microsoft Graph's alerts_v2 and incidents (GET /v1.0/security/incidents[/{id}]).
//
// Test-only endpoints (server.h has the full list):
//   GET  /_emulator/versions                  every alert version (latest, served, future)
//   GET  /_emulator/versions?kind=incidents   every incident version: {"now", "versions":
//        [{"id", "lastUpdateDateTime" (as served), "alerts", "latest", "served"}]}
//   GET  /_emulator/stats, GET|POST /_emulator/faults, POST /_emulator/clock
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "mdecollect/core/host_port.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/units.h"
#include "mdecollect/emulator/server.h"

namespace {

constexpr int kExitUsage = 2;

}  // namespace

int main(int argc, char** argv) {
  using mdec::emulator::EmulatorConfig;
  try {
    CLI::App app{
        "mde-emulator " MDEC_VERSION
        " - emulates Microsoft's token endpoint, the Defender for Endpoint alerts API\n"
        "(GET /api/alerts, /api/alerts/{id}; POST /{tenant}/oauth2/token and /oauth2/v2.0/token)\n"
        "and Microsoft Graph's alerts_v2 (GET /v1.0/security/alerts_v2, .../{id}) and incidents\n"
        "(GET /v1.0/security/incidents, .../{id}; $expand=alerts; $top at most 50), with tokens\n"
        "of scope https://graph.microsoft.com/.default, on loopback, over one deterministic,\n"
        "changing population of alerts (incidents: the alerts grouped by incidentId).\n"
        "The first line on standard output is the base URL. Test-only endpoints:\n"
        "  GET /_emulator/versions (alert versions), GET /_emulator/versions?kind=incidents\n"
        "  (incident versions: id, lastUpdateDateTime, alerts, latest, served),\n"
        "  GET /_emulator/stats, GET|POST /_emulator/faults (incidents_expand_fail_above: N,\n"
        "  incidents_item_fail: true|false, and the others), POST /_emulator/clock.\n"
        "Without --tenant, one client exists: tenant " +
        std::string(mdec::emulator::kDefaultTenant) + ", client id " +
        mdec::emulator::kDefaultClientId + ", secret '" + mdec::emulator::kDefaultClientSecret +
        "'."};
    app.set_version_flag("--version", "mde-emulator " MDEC_VERSION);
    std::string config_file;
    std::string listen;
    std::vector<std::string> tenants;
    std::vector<std::string> client_ids;
    std::vector<std::string> client_secrets;
    std::optional<std::size_t> alerts;
    std::optional<std::uint64_t> seed;
    std::optional<double> speed;
    std::optional<std::string> start;
    std::optional<std::string> token_lifetime;
    std::optional<std::string> orderby;
    std::optional<std::string> next_link;
    std::string tls_cert;
    std::string tls_key;
    bool no_graph_permission = false;
    bool no_incident_permission = false;
    std::optional<int> graph_quota;
    std::optional<std::size_t> tenant_count;
    std::optional<int> threads;
    std::optional<std::string> cloud;
    app.add_option("--config", config_file,
                   "YAML file with any of the settings below and more "
                   "(world rates, quota, faults)");
    app.add_option("--listen", listen, "HOST:PORT to listen on (default 127.0.0.1:0, any port)");
    app.add_option("--tenant", tenants,
                   "Tenant id of a client (repeat with --client-id and "
                   "--client-secret, one group per client)");
    app.add_option("--client-id", client_ids, "Client (application) id");
    app.add_option("--tenant-count", tenant_count,
                   "N generated tenants instead of --tenant: tenant k (1..N) is "
                   "00000000-0000-4000-a000-<k in 12 digits>, client id "
                   "00000000-0000-4000-c000-<k in 12 digits>, secret tenant-<k>-secret; the "
                   "alerts are dealt out among them (alert i to tenant i % N + 1) and each sees "
                   "only its own (config: tenant_count)");
    app.add_option("--threads", threads,
                   "HTTP worker threads (default 64: each open connection holds one); many clients "
                   "with keep-alive connections need more (config: threads)");
    app.add_option("--client-secret", client_secrets, "Client secret");
    app.add_option("--cloud", cloud,
                   "The national cloud whose resources tokens are issued for: global (default), "
                   "usgov, usgov_high, dod or china (config: cloud)");
    app.add_option("--alerts", alerts, "Initial population (default 1000)");
    app.add_option("--seed", seed, "Seed of the population and its changes (default 1)");
    app.add_option("--speed", speed, "Emulated seconds per real second (default 1)");
    app.add_option("--start", start, "Emulated time when the world opens (ISO 8601; default now)");
    app.add_option("--token-lifetime", token_lifetime, "Token lifetime, emulated (default 3599s)");
    app.add_option("--orderby", orderby, "$orderby handling: honour, ignore or reject");
    app.add_option("--next-link", next_link, "@odata.nextLink: none, correct or malformed");
    app.add_option("--tls-cert", tls_cert, "PEM certificate: serve HTTPS (with --tls-key)");
    app.add_option("--tls-key", tls_key, "PEM private key");
    app.add_flag("--no-graph-permission", no_graph_permission,
                 "Clients lack Graph's SecurityAlert.Read.All: Graph answers 403 "
                 "Authorization_RequestDenied");
    app.add_flag("--no-incident-permission", no_incident_permission,
                 "Clients lack Graph's SecurityIncident.Read.All: incidents answer 403 "
                 "Authorization_RequestDenied, alerts_v2 still works (config: "
                 "incident_permission: false)");
    app.add_option("--graph-quota", graph_quota,
                   "Graph requests a minute per client, alerts_v2 and incidents together "
                   "(default 150)");
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      app.exit(e);
      return kExitUsage;
    }

    EmulatorConfig config;
    config.world.start =
        std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now());
    if (!config_file.empty()) {
      if (auto s = mdec::emulator::loadEmulatorConfig(config_file, config); !s) {
        std::fprintf(stderr, "mde-emulator: %s\n", s.error().message().c_str());
        return kExitUsage;
      }
    }
    auto fail = [](const std::string& what) {
      std::fprintf(stderr, "mde-emulator: %s\n", what.c_str());
      return kExitUsage;
    };
    if (!listen.empty()) {
      auto address = mdec::core::parseHostPort(listen);
      if (!address) return fail("--listen must be HOST:PORT: " + address.error().message());
      config.host = std::move(address->host);
      config.port = address->port;
    }
    if (tenants.size() != client_ids.size() || tenants.size() != client_secrets.size()) {
      return fail(
          "--tenant, --client-id and --client-secret must be given the same number of "
          "times (one group per client)");
    }
    if (tenant_count) {
      if (*tenant_count < 1 || *tenant_count > 1000000) {
        return fail("--tenant-count must be from 1 to 1000000");
      }
      if (!tenants.empty() || !config.clients.empty()) {
        return fail("--tenant-count cannot be given with --tenant or the config's tenants");
      }
      config.tenant_count = *tenant_count;
    }
    if (threads) {
      if (*threads < 1 || *threads > 4096) return fail("--threads must be from 1 to 4096");
      config.threads = *threads;
    }
    if (!tenants.empty()) {
      if (config.tenant_count > 0) {
        return fail("--tenant cannot be given with the config's tenant_count");
      }
      config.clients.clear();
      for (std::size_t i = 0; i < tenants.size(); ++i) {
        config.clients.push_back({tenants[i], client_ids[i], client_secrets[i], true});
      }
    }
    if (cloud) {
      auto named = mdec::emulator::cloudNamed(*cloud);
      if (!named) return fail("--cloud must be global, usgov, usgov_high, dod or china");
      config.cloud = *named;
    }
    if (alerts) config.world.initial_alerts = *alerts;
    if (seed) config.world.seed = *seed;
    if (speed) {
      if (*speed <= 0) return fail("--speed must be positive");
      config.speed = *speed;
    }
    if (start) {
      auto t = mdec::core::parseIsoDateTime(*start);
      if (!t) return fail("--start is not an ISO 8601 date-time");
      config.world.start = mdec::emulator::Timestamp{} + std::chrono::seconds(t->seconds) +
                           std::chrono::nanoseconds(t->nanos);
    }
    if (token_lifetime) {
      auto d = mdec::core::parseDuration(*token_lifetime);
      if (!d) return fail("--token-lifetime: " + d.error().message());
      config.token_lifetime = std::chrono::duration_cast<std::chrono::seconds>(*d);
    }
    if (orderby || next_link) {
      std::string text = "{";
      if (orderby) text += "\"orderby\": \"" + *orderby + "\"";
      if (next_link)
        text += std::string(orderby ? "," : "") + "\"next_link\": \"" + *next_link + "\"";
      text += "}";
      if (auto s = mdec::emulator::applyFaultsText(text, config.faults, config.orderby,
                                                   config.next_link);
          !s) {
        return fail(s.error().message());
      }
    }
    if (no_graph_permission) {
      if (config.clients.empty() && config.tenant_count == 0) {
        config.clients.push_back({mdec::emulator::kDefaultTenant, mdec::emulator::kDefaultClientId,
                                  mdec::emulator::kDefaultClientSecret, true, true});
      }
      // Neither alerts_v2 nor incidents.
      for (auto& client : config.clients) {
        client.graph_read = false;
        client.incident_read = false;
      }
    }
    if (no_incident_permission) config.incident_permission = false;
    if (graph_quota) {
      if (*graph_quota <= 0) return fail("--graph-quota must be positive");
      config.graph_quota_per_minute = *graph_quota;
    }
    if (!tls_cert.empty()) config.tls_cert = tls_cert;
    if (!tls_key.empty()) config.tls_key = tls_key;

    // Signals are taken by sigwait below, not by handlers.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    const std::size_t clients = config.tenant_count > 0
                                    ? config.tenant_count
                                    : (config.clients.empty() ? 1 : config.clients.size());
    const std::size_t population = config.world.initial_alerts;
    mdec::emulator::EmulatorServer server(std::move(config));
    if (auto s = server.start(); !s) {
      std::fprintf(stderr, "mde-emulator: %s\n", s.error().message().c_str());
      return 1;
    }
    std::cout << server.baseUrl() << std::endl;
    std::fprintf(stderr,
                 "mde-emulator: serving %zu alerts for %zu client(s) at %s; "
                 "Ctrl-C stops\n",
                 population, clients, server.baseUrl().c_str());
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr, "mde-emulator: stopping (signal %d)\n", sig);
    server.stop();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mde-emulator: fatal: %s\n", e.what());
    return 1;
  }
}
