#include "waypoint/proxy/endpoints.h"

#include <doctest/doctest.h>

#include "ztunnel/state/test_fixtures.h"

namespace ambit::waypoint {
namespace {

namespace zt = ztunnel::testing;

constexpr const char* kReviews = "shop/reviews.shop.svc.cluster.local";

std::shared_ptr<const ztunnel::WorkloadStore> reviews_mesh() {
  auto v1 = zt::pod("shop", "reviews-v1-0", {"10.244.0.5"}, "reviews");
  v1.set_canonical_name("reviews");
  v1.set_canonical_revision("v1");
  zt::serve(v1, kReviews, {{9080, 9080}});
  auto v2 = zt::pod("shop", "reviews-v2-0", {"10.244.1.5"}, "reviews");
  v2.set_canonical_name("reviews");
  v2.set_canonical_revision("v2");
  zt::serve(v2, kReviews, {{9080, 9081}});
  auto down = zt::pod("shop", "reviews-v2-1", {"10.244.1.6"}, "reviews");
  down.set_canonical_revision("v2");
  down.set_status(istio::workload::UNHEALTHY);
  zt::serve(down, kReviews, {{9080, 9080}});
  zt::MeshBuilder mb;
  mb.add(zt::service("shop", "reviews.shop.svc.cluster.local", {"10.96.5.5"}, {{9080, 9080}}));
  mb.add(v1).add(v2).add(down);
  return mb.build();
}

}  // namespace

TEST_CASE("a subset keeps only its healthy pods, at the pod's own target port") {
  auto store = reviews_mesh();
  auto svc = store->service_by_key(kReviews);
  REQUIRE(svc);
  DestinationPolicy v2;
  v2.subset = "v2";
  v2.subset_labels = {{"version", "v2"}};
  auto eps = eligible_endpoints(*store, *svc, 9080, &v2);
  REQUIRE(eps.size() == 1);
  CHECK(eps[0].ip == "10.244.1.5");
  CHECK(eps[0].target_port == 9081);
  CHECK(eps[0].connect_timeout == Millis(10000));  // Istio's default
  CHECK_FALSE(eps[0].idle_timeout.has_value());

  auto all = eligible_endpoints(*store, *svc, 9080, nullptr);
  CHECK(all.size() == 2);  // the unhealthy pod never receives requests
  CHECK(eligible_endpoints(*store, *svc, 1234, nullptr).empty());
}

TEST_CASE("the namespace of a service hostname") {
  CHECK(namespace_of_host("reviews.shop.svc.cluster.local") == "shop");
  CHECK(namespace_of_host("reviews") == "");
}

TEST_CASE("endpoints are computed once per snapshot pair and subset, again after a push") {
  auto store = reviews_mesh();
  auto snap = std::make_shared<int>(1);  // stands for the L7 snapshot: only its identity counts
  auto svc = store->service_by_key(kReviews);
  REQUIRE(svc);
  DestinationPolicy all, v2;
  v2.subset = "v2";
  v2.subset_labels = {{"version", "v2"}};
  int fresh_calls = 0;
  std::function<std::shared_ptr<const ztunnel::WorkloadStore>()> fresh_store = [&] {
    ++fresh_calls;
    return store;
  };
  std::function<std::shared_ptr<const void>()> fresh_snap = [&] { return snap; };
  EndpointCache cache;
  auto a = cache.get(*store, snap.get(), *svc, 9080, "", all, fresh_store, fresh_snap);
  auto b = cache.get(*store, snap.get(), *svc, 9080, "", all, fresh_store, fresh_snap);
  auto c = cache.get(*store, snap.get(), *svc, 9080, "v2", v2, fresh_store, fresh_snap);
  CHECK(a == b);  // the same list, not a recomputation
  CHECK(a->size() == 2);
  CHECK(c->size() == 1);
  CHECK(fresh_calls == 1);

  // A push: a new store (the same mesh without the v1 pod's health) replaces the pair.
  auto old_store = store;
  store = reviews_mesh();
  auto svc2 = store->service_by_key(kReviews);
  auto d = cache.get(*store, snap.get(), *svc2, 9080, "", all, fresh_store, fresh_snap);
  CHECK(d != a);
  CHECK(a->size() == 2);  // the old list stays valid for whoever still holds it
  // A request still on the old store gets its own answer and leaves the cache alone.
  auto e = cache.get(*old_store, snap.get(), *svc, 9080, "", all, fresh_store, fresh_snap);
  CHECK(e->size() == 2);
  auto f = cache.get(*store, snap.get(), *svc2, 9080, "", all, fresh_store, fresh_snap);
  CHECK(f == d);
}

}  // namespace ambit::waypoint
