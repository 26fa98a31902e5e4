// taba_client_example: records a few metrics from several threads with the
// C++ client library, stops (a final flush), and prints what happened.
//
//   taba_client_example [ENDPOINT]     (default http://127.0.0.1:8279, the agent)
//
// Point it at a tabad fe to try it without an agent:
//   ./build/tabad &  ./build/examples/client/taba_client_example http://127.0.0.1:8300
//   curl 'http://127.0.0.1:8300/tabs?name=example.requests,example.latency_ms'
#include <taba/client.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  taba::ClientOptions options;
  if (argc > 1) options.endpoint = argv[1];
  options.client_id = "example-client";
  taba::Initialize(options);

  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([t] {
      for (int i = 0; i < 1000; ++i) {
        taba::Counter("example.requests");
        taba::Percentile("example.latency_ms", 1.0 + (i % 100) * 0.5);
      }
      taba::Buffer("example.log", "worker " + std::to_string(t) + " done");
    });
  }
  for (auto& w : workers) w.join();
  taba::Gauge("example.version", "v1.2.3");
  taba::Gauge("example.maintenance", "no", std::chrono::system_clock::now() + std::chrono::minutes(10));

  taba::Stop();  // ships everything recorded (bounded by options.stop_timeout)
  taba::ClientStatus s = taba::GetStatus();
  std::printf("recorded %llu, sent %llu in %llu posts, unsent %llu%s%s\n",
              static_cast<unsigned long long>(s.recorded), static_cast<unsigned long long>(s.sent),
              static_cast<unsigned long long>(s.posts_ok), static_cast<unsigned long long>(s.dropped_unsent),
              s.last_error.empty() ? "" : "; last error: ", s.last_error.c_str());
  return s.sent == s.recorded ? 0 : 1;
}
