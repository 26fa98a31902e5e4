// POST /post_delta at a real agent: the agent checks a delta body as an fe
// does, and keeps the blocks it refuses as a dead letter holding them in the
// wire envelope (dl-<id>.delta), which /post_delta takes back, beside its
// reasons (dl-<id>.reason). Nothing of a body refused whole is spooled.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"
#include "protocol/delta_batch.h"

using namespace taba;
using namespace taba::test;

TEST_CASE("agent: a delta body's refused blocks become a dl-<id>.delta dead letter in the wire envelope",
          "[e2e][agent][delta]") {
  TempDir dir("taba-agent-delta");
  const std::string config = dir.path + "/agent.toml";
  REQUIRE_OK(write_text_file(config, fmt::format("[server]\nroles = [\"agent\"]\nself_tabs_interval_s = 0\n"
                                                 "[agent]\nendpoints = [\"127.0.0.1:{}\"]\n",
                                                 free_port())));
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", config}));

  protocol::DeltaWriter w(1700000000.5);
  w.add("web01", "jobs", "NoSuchType", 7, 1, "\x01\x02");
  w.add("web 02", "jobs", "TotalsCounter", 2, 1, "");
  const std::string body = protocol::wrap_delta_body(w.finish());
  auto r = agent.post("/post_delta", body,
                      {{"Content-Type", std::string(protocol::kDeltaContentType)}, {"Taba-Batch-Id", "edge-1"}});
  CHECK(status_of(r) == 400);
  CHECK(body_text(r) ==
        "block 1: unknown type \"NoSuchType\" (no loaded plugin serves it)\n"
        "block 2: invalid client ID \"web 02\": contains ' ' (0x20) at byte 3\n");

  std::vector<std::string> letters;
  for (const auto& e : std::filesystem::directory_iterator(agent.data_dir() + "/dead-letters")) {
    letters.push_back(e.path().filename().string());
  }
  std::sort(letters.begin(), letters.end());
  INFO(fmt::format("{}", fmt::join(letters, " ")));
  REQUIRE(letters.size() == 2);
  CHECK(letters[0].rfind("dl-refused-edge-1-", 0) == 0);
  CHECK(letters[0].ends_with(".delta"));
  CHECK(letters[1] == letters[0].substr(0, letters[0].size() - 6) + ".reason");
  // Every block was refused: the dead letter is the body as it came.
  CHECK(read_file(agent.data_dir() + "/dead-letters/" + letters[0]) == body);
  const std::string reason = read_file(agent.data_dir() + "/dead-letters/" + letters[1]);
  CHECK(reason.find("post edge-1 refused by the agent: 9 events in refused blocks: block 1: unknown type") !=
        std::string::npos);

  const std::string metrics = body_text(agent.get("/metrics"));
  CHECK(metric(metrics, "taba_agent_blocks_refused_total{kind=\"type\"}") == 1);
  CHECK(metric(metrics, "taba_agent_blocks_refused_total{kind=\"client\"}") == 1);
  CHECK(metric(metrics, "taba_agent_events_refused_total") == 9);
  CHECK(metric(metrics, "taba_agent_delta_bodies_total") == 0);
  CHECK(metric(metrics, "taba_agent_dead_letters_total") == 1);
  CHECK(body_text(agent.get("/nope")).find("/post /post_zip /post_delta") != std::string::npos);
}
