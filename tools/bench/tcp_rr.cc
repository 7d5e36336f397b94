// tcp_rr: an open-loop, fixed-rate request/response load over TCP, for tools/bench.
//
// Each connection sends a request of --size bytes on a fixed schedule and reads the same
// number of bytes back (the peer is an echo server). Latency is measured from the moment a
// request was DUE, not from when it was sent, so a stalled proxy cannot hide its queueing
// (no coordinated omission). The run is bounded by --duration; the result is one JSON object.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 9000;
  int connections = 8;
  double rate = 1000;       // requests per second, all connections together
  double duration = 5;      // seconds of measurement
  double warmup = 1;        // seconds sent but not measured
  size_t size = 1024;
};

struct ConnResult {
  std::vector<double> latencies_us;
  uint64_t errors = 0;
  std::string first_error;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "tcp_rr: %s\nusage: tcp_rr --target IP:PORT [--connections N] [--rate REQ_PER_S]\n"
               "              [--duration S] [--warmup S] [--size BYTES]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--target") {
      std::string t = value();
      auto colon = t.rfind(':');
      if (colon == std::string::npos) usage("--target must be IP:PORT");
      o.host = t.substr(0, colon);
      o.port = std::atoi(t.c_str() + colon + 1);
    } else if (a == "--connections") {
      o.connections = std::atoi(value().c_str());
    } else if (a == "--rate") {
      o.rate = std::atof(value().c_str());
    } else if (a == "--duration") {
      o.duration = std::atof(value().c_str());
    } else if (a == "--warmup") {
      o.warmup = std::atof(value().c_str());
    } else if (a == "--size") {
      o.size = static_cast<size_t>(std::atol(value().c_str()));
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (o.connections < 1 || o.rate <= 0 || o.duration <= 0 || o.duration > 600 || o.size == 0 ||
      o.port <= 0 || o.port > 65535) {
    usage("bad option value");
  }
  return o;
}

bool full_io(int fd, char* buf, size_t len, bool send_side) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = send_side ? ::send(fd, buf + done, len - done, MSG_NOSIGNAL)
                          : ::recv(fd, buf + done, len - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

void run_connection(const Options& o, Clock::time_point start, ConnResult& out) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(o.port));
  if (inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    out.errors++;
    out.first_error = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  std::vector<char> req(o.size, 'x'), resp(o.size);
  const auto interval = std::chrono::duration<double>(o.connections / o.rate);
  const auto measure_from = start + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(o.warmup));
  const auto end = measure_from + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.duration));
  out.latencies_us.reserve(static_cast<size_t>(o.duration / interval.count()) + 16);
  for (uint64_t k = 0;; ++k) {
    auto due = start + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(k));
    if (due >= end) break;
    std::this_thread::sleep_until(due);
    if (!full_io(fd, req.data(), req.size(), true) ||
        !full_io(fd, resp.data(), resp.size(), false)) {
      out.errors++;
      if (out.first_error.empty()) out.first_error = std::string("io: ") + std::strerror(errno);
      break;
    }
    if (due >= measure_from) {
      out.latencies_us.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - due).count());
    }
  }
  ::close(fd);
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t idx = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(idx, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  std::vector<ConnResult> results(static_cast<size_t>(o.connections));
  std::vector<std::thread> threads;
  // Stagger the connections across one interval so requests are spread evenly in time.
  auto start = Clock::now() + std::chrono::milliseconds(50);
  for (int c = 0; c < o.connections; ++c) {
    auto offset = std::chrono::duration<double>(1.0 / o.rate * c);
    threads.emplace_back(run_connection, std::cref(o),
                         start + std::chrono::duration_cast<Clock::duration>(offset),
                         std::ref(results[static_cast<size_t>(c)]));
  }
  for (auto& t : threads) t.join();

  std::vector<double> all;
  uint64_t errors = 0;
  std::string first_error;
  for (auto& r : results) {
    all.insert(all.end(), r.latencies_us.begin(), r.latencies_us.end());
    errors += r.errors;
    if (first_error.empty()) first_error = r.first_error;
  }
  std::sort(all.begin(), all.end());
  std::printf(
      "{\"requests\": %zu, \"errors\": %llu, \"achieved_rate\": %.1f, \"p50_us\": %.1f, "
      "\"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f, "
      "\"first_error\": \"%s\"}\n",
      all.size(), static_cast<unsigned long long>(errors),
      static_cast<double>(all.size()) / o.duration, percentile(all, 0.5), percentile(all, 0.9),
      percentile(all, 0.99), percentile(all, 0.999), all.empty() ? 0.0 : all.back(),
      first_error.c_str());
  return errors == 0 ? 0 : 1;
}
