#include "common/metrics/registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/base/log.h"

namespace ambit::metrics {

const std::vector<double> kIstioDurationBucketsMs = {
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
    600000, 1800000, 3600000};
const std::vector<double> kIstioSizeBuckets = {1, 10, 100, 1000, 10000, 100000, 1000000,
                                               10000000, 100000000, 1000000000};

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()),
      buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  // Bucket i counts observations <= bounds_[i]; the last one is +Inf.
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (v > 0) sum_micros_.fetch_add(static_cast<uint64_t>(std::llround(v * 1e6)),
                                   std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulative_counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t acc = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    out[i] = acc;
  }
  return out;
}

double Histogram::sum() const {
  return static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
}

uint64_t Histogram::count() const { return count_.load(std::memory_order_relaxed); }

namespace {

template <class M>
M& emplace_series(std::deque<std::pair<LabelValues, M>>& series, const LabelValues& values,
                  const std::vector<double>&) {
  series.emplace_back(std::piecewise_construct, std::forward_as_tuple(values),
                      std::forward_as_tuple());
  return series.back().second;
}

template <>
Histogram& emplace_series(std::deque<std::pair<LabelValues, Histogram>>& series,
                          const LabelValues& values, const std::vector<double>& bounds) {
  series.emplace_back(std::piecewise_construct, std::forward_as_tuple(values),
                      std::forward_as_tuple(std::span<const double>(bounds)));
  return series.back().second;
}

std::string format_number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // Prefer the short form when it round-trips (0.5, 1000, ...).
  char shortbuf[64];
  std::snprintf(shortbuf, sizeof shortbuf, "%g", v);
  return std::strtod(shortbuf, nullptr) == v ? shortbuf : buf;
}

void append_labels(std::string& out, const std::vector<std::string>& names,
                   const LabelValues& values, const char* extra_name = nullptr,
                   const std::string* extra_value = nullptr) {
  if (names.empty() && !extra_name) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out += '"';
  }
  if (extra_name) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += *extra_value;
    out += '"';
  }
  out += '}';
}

void append_header(std::string& out, const std::string& name, const std::string& help,
                   const char* type) {
  out += "# HELP " + name + " ";
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  out += "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

template <class M>
M& Family<M>::with(const LabelValues& values) {
  std::lock_guard lock(mu_);
  if (values.size() != label_names_.size()) {
    log::get("metrics")->error("metric {}: {} label values given for {} labels", name_,
                               values.size(), label_names_.size());
    LabelValues fixed = values;
    fixed.resize(label_names_.size(), "unknown");
    auto it = index_.find(fixed);
    if (it != index_.end()) return *it->second;
    M& m = emplace_series(series_, fixed, bounds_);
    index_.emplace(fixed, &m);
    return m;
  }
  auto it = index_.find(values);
  if (it != index_.end()) return *it->second;
  M& m = emplace_series(series_, values, bounds_);
  index_.emplace(values, &m);
  return m;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Result<Registry::Entry*> Registry::find_or_add(const std::string& name, Kind kind,
                                                const std::vector<std::string>& label_names) {
  if (!valid_metric_name(name)) {
    return make_error(Errc::invalid_argument, "invalid metric name '" + name + "'");
  }
  for (const auto& l : label_names) {
    if (!valid_label_name(l) || l == "le") {
      return make_error(Errc::invalid_argument,
                        "invalid label name '" + l + "' for metric '" + name + "'");
    }
  }
  for (auto& [n, e] : families_) {
    if (n != name) continue;
    if (e.kind != kind || e.label_names != label_names) {
      return make_error(Errc::already_exists,
                        "metric '" + name + "' already registered with another type or labels");
    }
    return &e;
  }
  families_.emplace_back(name, Entry{kind, label_names, nullptr, nullptr, nullptr});
  return &families_.back().second;
}

Result<Family<Counter>*> Registry::counter(const std::string& name, const std::string& help,
                                           std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  auto e = find_or_add(name, Kind::counter, label_names);
  if (!e.ok()) return e.take_error();
  if (!(*e)->counter) {
    (*e)->counter.reset(new Family<Counter>(name, help, std::move(label_names)));
  }
  return (*e)->counter.get();
}

Result<Family<Gauge>*> Registry::gauge(const std::string& name, const std::string& help,
                                       std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  auto e = find_or_add(name, Kind::gauge, label_names);
  if (!e.ok()) return e.take_error();
  if (!(*e)->gauge) (*e)->gauge.reset(new Family<Gauge>(name, help, std::move(label_names)));
  return (*e)->gauge.get();
}

Result<Family<Histogram>*> Registry::histogram(const std::string& name, const std::string& help,
                                               std::vector<std::string> label_names,
                                               std::vector<double> bounds) {
  if (bounds.empty() || !std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end()) {
    return make_error(Errc::invalid_argument,
                      "histogram '" + name + "' needs strictly increasing bucket bounds");
  }
  std::lock_guard lock(mu_);
  auto e = find_or_add(name, Kind::histogram, label_names);
  if (!e.ok()) return e.take_error();
  if (!(*e)->histogram) {
    (*e)->histogram.reset(
        new Family<Histogram>(name, help, std::move(label_names), std::move(bounds)));
  }
  return (*e)->histogram.get();
}

std::string Registry::render() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, e] : families_) {
    switch (e.kind) {
      case Kind::counter:
        append_header(out, name, e.counter->help_, "counter");
        e.counter->for_each([&](const LabelValues& lv, const Counter& c) {
          out += name;
          append_labels(out, e.label_names, lv);
          out += ' ' + std::to_string(c.value()) + '\n';
        });
        break;
      case Kind::gauge:
        append_header(out, name, e.gauge->help_, "gauge");
        e.gauge->for_each([&](const LabelValues& lv, const Gauge& g) {
          out += name;
          append_labels(out, e.label_names, lv);
          out += ' ' + std::to_string(g.value()) + '\n';
        });
        break;
      case Kind::histogram:
        append_header(out, name, e.histogram->help_, "histogram");
        e.histogram->for_each([&](const LabelValues& lv, const Histogram& h) {
          auto counts = h.cumulative_counts();
          auto bounds = h.bounds();
          for (size_t i = 0; i <= bounds.size(); ++i) {
            std::string le = i < bounds.size() ? format_number(bounds[i]) : "+Inf";
            out += name + "_bucket";
            append_labels(out, e.label_names, lv, "le", &le);
            out += ' ' + std::to_string(counts[i]) + '\n';
          }
          out += name + "_sum";
          append_labels(out, e.label_names, lv);
          out += ' ' + format_number(h.sum()) + '\n';
          out += name + "_count";
          append_labels(out, e.label_names, lv);
          out += ' ' + std::to_string(h.count()) + '\n';
        });
        break;
    }
  }
  return out;
}

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  auto head = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; };
  if (!head(n[0])) return false;
  return std::all_of(n.begin(), n.end(), [&](char c) {
    return head(c) || std::isdigit(static_cast<unsigned char>(c));
  });
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || n.substr(0, 2) == "__") return false;
  auto head = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; };
  if (!head(n[0])) return false;
  return std::all_of(n.begin(), n.end(), [&](char c) {
    return head(c) || std::isdigit(static_cast<unsigned char>(c));
  });
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace ambit::metrics
