// A Prometheus text-format registry: counter, gauge and histogram families with labels.
//
// Invariants: a series, once created, lives as long as the registry and never moves, so the
// data path looks a series up once (under the family's lock) and then updates it with relaxed
// atomics only. Rendering takes each family's lock briefly; values may be read mid-update,
// which Prometheus tolerates (each number is itself consistent).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/base/error.h"

namespace ambit::metrics {

// Label pairs in the order the family declared its label names.
using LabelValues = std::vector<std::string>;

class Counter {
 public:
  void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void add(int64_t d) { v_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds);
  void observe(double v);
  // Cumulative counts per bound (the last entry is +Inf), the sum and the count.
  std::vector<uint64_t> cumulative_counts() const;
  double sum() const;
  uint64_t count() const;
  std::span<const double> bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (+Inf)
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};  // sum scaled by 1e6: lock-free and exact enough
};

// Istio's default buckets for istio_request_duration_milliseconds.
extern const std::vector<double> kIstioDurationBucketsMs;
// Istio's default buckets for request/response sizes (bytes).
extern const std::vector<double> kIstioSizeBuckets;

enum class Kind { counter, gauge, histogram };

template <class M>
class Family {
 public:
  const std::string& name() const { return name_; }
  // The series for these label values, created at first use. Keep the reference: it stays
  // valid for the registry's lifetime. Wrong arity is a programming error: it is logged and
  // the values are padded with "unknown" (or truncated) so that nothing on the data path fails.
  M& with(const LabelValues& values);
  M& with(std::initializer_list<std::string> values) { return with(LabelValues(values)); }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds = {})
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}

  std::string name_, help_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  std::deque<std::pair<LabelValues, M>> series_;  // deque: elements never move
  std::map<LabelValues, M*> index_;

  template <class F>
  void for_each(F&& f) const {
    std::lock_guard lock(mu_);
    for (const auto& [labels, m] : series_) f(labels, m);
  }
};

class Registry {
 public:
  // Registering the same name twice with the same shape returns the existing family;
  // a different kind or label set is an error.
  Result<Family<Counter>*> counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> label_names = {});
  Result<Family<Gauge>*> gauge(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names = {});
  Result<Family<Histogram>*> histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> label_names,
                                       std::vector<double> bounds);

  // Prometheus text exposition format 0.0.4, families in registration order.
  std::string render() const;

 private:
  struct Entry {
    Kind kind;
    std::vector<std::string> label_names;
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  Result<Entry*> find_or_add(const std::string& name, Kind kind,
                             const std::vector<std::string>& label_names);

  mutable std::mutex mu_;
  std::deque<std::pair<std::string, Entry>> families_;
};

// Name rules of the exposition format.
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);
// Escapes a label value: backslash, double quote and newline.
std::string escape_label_value(std::string_view v);

}  // namespace ambit::metrics
