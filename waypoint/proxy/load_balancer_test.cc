#include "waypoint/proxy/load_balancer.h"

#include <doctest/doctest.h>

#include <map>

namespace ambit::waypoint {
namespace {

class Sequence final : public RandomSource {
 public:
  explicit Sequence(std::vector<uint64_t> v) : v_(std::move(v)) {}
  uint64_t below(uint64_t bound) override { return v_[i_++ % v_.size()] % bound; }

 private:
  std::vector<uint64_t> v_;
  size_t i_ = 0;
};

const std::vector<std::string> kThree = {"10.244.0.5:8080", "10.244.1.7:8080", "10.244.2.9:8080"};

std::vector<size_t> assign(const HashTable& t, size_t keys) {
  std::vector<size_t> out;
  for (size_t i = 0; i < keys; ++i) out.push_back(t.pick(hash_key("user-" + std::to_string(i))));
  return out;
}

std::map<std::string, size_t> share(const HashTable& t, const std::vector<std::string>& hosts,
                                    size_t keys) {
  std::map<std::string, size_t> n;
  for (size_t h : assign(t, keys)) ++n[hosts[h]];
  return n;
}

// Drops hosts[gone] and reports the share of keys that changed host, checking that only the
// keys of the removed host moved.
double moved_when_one_goes(const ConsistentHash& cfg, size_t gone, size_t keys) {
  std::vector<std::string> fewer = kThree;
  fewer.erase(fewer.begin() + static_cast<long>(gone));
  auto before = build_hash_table(cfg, kThree);
  auto after = build_hash_table(cfg, fewer);
  size_t moved = 0, stayed_wrongly_moved = 0;
  for (size_t i = 0; i < keys; ++i) {
    uint64_t h = hash_key("user-" + std::to_string(i));
    const std::string& was = kThree[before->pick(h)];
    const std::string& now = fewer[after->pick(h)];
    if (was != now) {
      ++moved;
      if (was != kThree[gone]) ++stayed_wrongly_moved;
    }
  }
  if (cfg.algorithm == ConsistentHash::Algorithm::ring_hash) CHECK(stayed_wrongly_moved == 0);
  return static_cast<double>(moved) / static_cast<double>(keys);
}

}  // namespace

TEST_CASE("least request prefers the less busy of two random picks") {
  std::vector<uint32_t> busy{5, 0};
  auto load = [&](size_t i) { return busy[i]; };
  Sequence picks({0, 1});
  CHECK(pick_two_choices(2, load, picks) == 1);
  Sequence same({0, 0});
  CHECK(pick_two_choices(2, load, same) == 0);  // both picks the same: no choice
  Sequence tie({1, 0});
  CHECK(pick_two_choices(2, [](size_t) { return 0u; }, tie) == 1);  // a tie keeps the first
}

TEST_CASE("a ring spreads keys over its hosts and moves only the keys of a host that left") {
  ConsistentHash ring;
  ring.table_size = 1024;
  RingHash t(kThree, 1024);
  CHECK(t.points() == 3 * 1024);
  for (const auto& [host, n] : share(t, kThree, 30000)) {
    INFO(host);
    CHECK(n > 7500);  // a third is 10000
    CHECK(n < 12500);
  }
  for (size_t gone = 0; gone < 3; ++gone) {
    double moved = moved_when_one_goes(ring, gone, 30000);
    CHECK(moved < 1.0 / 3 + 0.08);
    CHECK(moved > 0.2);
  }
}

TEST_CASE("a Maglev table is prime-sized, even, and moves about a third when one of 3 goes") {
  Maglev t(kThree, 65536);
  CHECK(t.size() == 65537);
  for (const auto& [host, n] : share(t, kThree, 30000)) {
    INFO(host);
    CHECK(n > 9000);
    CHECK(n < 11000);
  }
  ConsistentHash mg;
  mg.algorithm = ConsistentHash::Algorithm::maglev;
  mg.table_size = 65537;
  for (size_t gone = 0; gone < 3; ++gone) {
    double moved = moved_when_one_goes(mg, gone, 30000);
    CHECK(moved < 1.0 / 3 + 0.05);
  }
  // Same hosts, same table: a key maps the same way every time.
  Maglev again(kThree, 65536);
  CHECK(assign(t, 1000) == assign(again, 1000));
}

TEST_CASE("hash keys come from a header, a cookie, a query parameter or the client") {
  HeaderMap h{{"x-user", "jason"}, {"cookie", "a=1; session=\"abc\"; b=2"}};
  HashInput in{h, "/items?page=2&user=ann&x", "10.1.2.3"};
  ConsistentHash c;
  c.key = ConsistentHash::Key::header;
  c.name = "x-user";
  CHECK(request_hash_key(c, in) == "jason");
  c.name = "x-missing";
  CHECK_FALSE(request_hash_key(c, in).has_value());
  c.key = ConsistentHash::Key::cookie;
  c.name = "session";
  CHECK(request_hash_key(c, in) == "abc");
  c.name = "sess";
  CHECK_FALSE(request_hash_key(c, in).has_value());
  c.key = ConsistentHash::Key::query_parameter;
  c.name = "user";
  CHECK(request_hash_key(c, in) == "ann");
  c.name = "x";
  CHECK(request_hash_key(c, in) == "");
  c.name = "page2";
  CHECK_FALSE(request_hash_key(c, in).has_value());
  c.key = ConsistentHash::Key::source_ip;
  CHECK(request_hash_key(c, in) == "10.1.2.3");
  CHECK_FALSE(find_query_parameter("/no-query", "a").has_value());
}

TEST_CASE("an issued cookie carries the ttl in seconds and the path") {
  ConsistentHash c;
  c.key = ConsistentHash::Key::cookie;
  c.name = "user";
  c.cookie_ttl = std::chrono::milliseconds(60000);
  c.cookie_path = "/";
  CHECK(issue_cookie(c, "0f3a") == "user=\"0f3a\"; Max-Age=60; Path=/; HttpOnly");
}

}  // namespace ambit::waypoint
