// mdecollect: Microsoft Defender for Endpoint alerts -> Elastic Common Schema.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "commands.h"
#include "mdecollect/core/build_info.h"

int main(int argc, char** argv) {
  try {
    CLI::App app{"mdecollect " MDEC_VERSION
                 " - collects Microsoft Defender for Endpoint alerts and maps them to ECS 8.11\n"
                 "Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error."};
    app.set_version_flag("--version", [] {
      return std::string("mdecollect " MDEC_VERSION "\n") + mdec::core::buildInfo();
    });
    app.require_subcommand(1);
    std::function<int()> run;
    mdec::app::addMapCommand(app, run);
    mdec::app::addRunCommands(app, run);
    mdec::app::addCheckCommand(app, run);
    mdec::app::addBackfillCommand(app, run);
    mdec::app::addStateCommands(app, run);
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      app.exit(e);
      return mdec::app::kExitUsage;
    }
    return run ? run() : mdec::app::kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mdecollect: fatal: %s\n", e.what());
    return mdec::app::kExitFailure;
  } catch (...) {
    std::fprintf(stderr, "mdecollect: fatal: unknown error\n");
    return mdec::app::kExitFailure;
  }
}
