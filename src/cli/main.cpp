// taba-cli entry point; the logic is in run() (cli.h) and the parts it uses.
#include "cli/cli.h"

int main(int argc, char** argv) {
  return taba::cli::run(argc, argv);
}
