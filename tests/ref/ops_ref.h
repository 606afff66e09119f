// Scalar references of every op, templated on T so they run in double and in std::complex<double>
// (complex-step derivatives: Im f(x + i h e_k) / h = df/dx_k exactly, no cancellation, h = 1e-50).
// Plain loops straight from the formulas; nothing shared with the kernels. Shapes as backend.h.
#pragma once
#include <cmath>
#include <complex>
#include <cstdint>
#include <functional>
#include <vector>

namespace cs::ref {

using cd = std::complex<double>;
inline double re(double x) { return x; }
inline double re(const cd& x) { return x.real(); }

// alpha * op(a) @ op(b) + beta * c0, (m, n); a stored (m, k) or, transposed, (k, m); b (k, n) or (n, k).
template <typename T>
std::vector<T> matmul(const std::vector<T>& a, bool ta, const std::vector<T>& b, bool tb, int64_t m, int64_t n,
                      int64_t k, double alpha, double beta, const std::vector<T>& c0) {
  std::vector<T> c(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      T acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += a[size_t(ta ? p * m + i : i * k + p)] * b[size_t(tb ? j * k + p : p * n + j)];
      c[size_t(i * n + j)] = alpha * acc + beta * c0[size_t(i * n + j)];
    }
  return c;
}

template <typename T>
std::vector<T> rmsnorm(const std::vector<T>& x, const std::vector<T>& w, double eps, int64_t n, int64_t d) {
  std::vector<T> y(x.size());
  for (int64_t i = 0; i < n; ++i) {
    T ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += x[i * d + j] * x[i * d + j];
    T r = T(1) / std::sqrt(ss / double(d) + eps);
    for (int64_t j = 0; j < d; ++j) y[i * d + j] = w[j] * x[i * d + j] * r;
  }
  return y;
}

// x: (BH, T, Hd); angle(t, i) = (pos0 + t) * base^(-2i/Hd).
template <typename T>
std::vector<T> rope(const std::vector<T>& x, int64_t bh, int64_t t_len, int64_t hd, double base, int64_t pos0) {
  std::vector<T> y(x.size());
  const int64_t half = hd / 2;
  for (int64_t r = 0; r < bh; ++r)
    for (int64_t t = 0; t < t_len; ++t)
      for (int64_t i = 0; i < half; ++i) {
        const double a = double(pos0 + t) * std::pow(base, -2.0 * double(i) / double(hd));
        const T x1 = x[(r * t_len + t) * hd + i], x2 = x[(r * t_len + t) * hd + half + i];
        y[(r * t_len + t) * hd + i] = x1 * std::cos(a) - x2 * std::sin(a);
        y[(r * t_len + t) * hd + half + i] = x2 * std::cos(a) + x1 * std::sin(a);
      }
  return y;
}

// Causal attention; q, k, v: (B, H, T, Hd); slopes empty or (H): bias slope * j (HF's form).
template <typename T>
std::vector<T> attention(const std::vector<T>& q, const std::vector<T>& k, const std::vector<T>& v,
                         const std::vector<double>& slopes, int64_t b, int64_t h, int64_t t_len,
                         int64_t hd) {
  std::vector<T> o(q.size());
  const double scale = 1.0 / std::sqrt(double(hd));
  std::vector<T> s(t_len);
  for (int64_t bh = 0; bh < b * h; ++bh) {
    const int64_t off = bh * t_len * hd;
    const double slope = slopes.empty() ? 0.0 : slopes[bh % h];
    for (int64_t i = 0; i < t_len; ++i) {
      double mx = -1e300;
      for (int64_t j = 0; j <= i; ++j) {
        T acc = 0;
        for (int64_t d = 0; d < hd; ++d) acc += q[off + i * hd + d] * k[off + j * hd + d];
        s[j] = acc * scale + slope * double(j);
        mx = std::max(mx, re(s[j]));
      }
      T sum = 0;
      for (int64_t j = 0; j <= i; ++j) sum += (s[j] = std::exp(s[j] - mx));
      for (int64_t d = 0; d < hd; ++d) {
        T acc = 0;
        for (int64_t j = 0; j <= i; ++j) acc += s[j] * v[off + j * hd + d];
        o[off + i * hd + d] = acc / sum;
      }
    }
  }
  return o;
}

// The VJP of attention() in double, written out (Vaswani et al.; the softmax Jacobian):
// P = softmax(S) row by row, dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dP * P)),
// dQ = dS K / sqrt(Hd), dK = dS^T Q / sqrt(Hd). Checked against complex-step derivatives at small
// T (tests/backend/attention_test.cpp), then the reference for the kernels at any T.
inline void attention_backward(const std::vector<double>& q, const std::vector<double>& k,
                               const std::vector<double>& v, const std::vector<double>& slopes,
                               const std::vector<double>& dout, int64_t b, int64_t h, int64_t t_len,
                               int64_t hd, std::vector<double>& dq, std::vector<double>& dk,
                               std::vector<double>& dv) {
  dq.assign(q.size(), 0.0);
  dk.assign(q.size(), 0.0);
  dv.assign(q.size(), 0.0);
  const double scale = 1.0 / std::sqrt(double(hd));
  std::vector<double> p(static_cast<size_t>(t_len)), dp(static_cast<size_t>(t_len));
  for (int64_t bh = 0; bh < b * h; ++bh) {
    const int64_t off = bh * t_len * hd;
    const double slope = slopes.empty() ? 0.0 : slopes[size_t(bh % h)];
    for (int64_t i = 0; i < t_len; ++i) {
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double acc = 0;
        for (int64_t d = 0; d < hd; ++d) acc += q[size_t(off + i * hd + d)] * k[size_t(off + j * hd + d)];
        p[size_t(j)] = acc * scale + slope * double(j);
        mx = std::max(mx, p[size_t(j)]);
      }
      for (int64_t j = 0; j <= i; ++j) sum += (p[size_t(j)] = std::exp(p[size_t(j)] - mx));
      double row = 0;
      for (int64_t j = 0; j <= i; ++j) {
        p[size_t(j)] /= sum;
        double acc = 0;
        for (int64_t d = 0; d < hd; ++d) {
          acc += dout[size_t(off + i * hd + d)] * v[size_t(off + j * hd + d)];
          dv[size_t(off + j * hd + d)] += p[size_t(j)] * dout[size_t(off + i * hd + d)];
        }
        dp[size_t(j)] = acc;
        row += acc * p[size_t(j)];
      }
      for (int64_t j = 0; j <= i; ++j) {
        const double ds = p[size_t(j)] * (dp[size_t(j)] - row) * scale;
        for (int64_t d = 0; d < hd; ++d) {
          dq[size_t(off + i * hd + d)] += ds * k[size_t(off + j * hd + d)];
          dk[size_t(off + j * hd + d)] += ds * q[size_t(off + i * hd + d)];
        }
      }
    }
  }
}

// gu: (N, 2F) gate | up -> (N, F).
template <typename T>
std::vector<T> swiglu(const std::vector<T>& gu, int64_t n, int64_t f) {
  std::vector<T> y(size_t(n * f));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < f; ++j) {
      const T g = gu[i * 2 * f + j], u = gu[i * 2 * f + f + j];
      y[i * f + j] = g / (T(1) + std::exp(-g)) * u;
    }
  return y;
}

// Per-row losses; target -1 gives 0.
template <typename T>
std::vector<T> cross_entropy(const std::vector<T>& z, const std::vector<int32_t>& tgt, int64_t v) {
  const int64_t n = int64_t(tgt.size());
  std::vector<T> l(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (tgt[i] < 0) { l[i] = 0; continue; }
    double mx = -1e300;
    for (int64_t j = 0; j < v; ++j) mx = std::max(mx, re(z[i * v + j]));
    T s = 0;
    for (int64_t j = 0; j < v; ++j) s += std::exp(z[i * v + j] - mx);
    l[i] = mx + std::log(s) - z[i * v + tgt[i]];
  }
  return l;
}

// One AdamW step as torch.optim.AdamW on flat vectors (p, m, v updated in place), step >= 1:
// p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps).
template <typename T>
void adamw(std::vector<T>& p, const std::vector<T>& g, std::vector<T>& m, std::vector<T>& v,
           double lr, double b1, double b2, double eps, double wd, int64_t step) {
  const double bc1 = 1.0 - std::pow(b1, double(step)), bc2 = 1.0 - std::pow(b2, double(step));
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] *= 1.0 - lr * wd;
    m[i] = b1 * m[i] + (1.0 - b1) * g[i];
    v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
    p[i] -= lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + eps);
  }
}

// Vector-Jacobian product of f at x by complex step: out[k] = sum_o dy[o] * d f_o / d x_k.
inline std::vector<double> vjp_complex_step(
    const std::function<std::vector<cd>(const std::vector<cd>&)>& f, const std::vector<double>& x,
    const std::vector<double>& dy) {
  constexpr double h = 1e-50;
  std::vector<cd> xc(x.begin(), x.end());
  std::vector<double> g(x.size());
  for (size_t k = 0; k < x.size(); ++k) {
    xc[k] = cd(x[k], h);
    const std::vector<cd> y = f(xc);
    double acc = 0;
    for (size_t o = 0; o < y.size(); ++o) acc += dy[o] * y[o].imag() / h;
    g[k] = acc;
    xc[k] = cd(x[k], 0);
  }
  return g;
}

}  // namespace cs::ref
