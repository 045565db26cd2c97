// Batched matrix product for XLA:CPU through the XLA FFI, on OpenBLAS (scipy-openblas32).
//
//   C[g] = op(A[g]) · op(B[g]),  g over the flattened leading (batch) dimensions,
//   op(X) = X or Xᵀ (attributes trans_a, trans_b), row-major, float32 → sgemm, float64 → dgemm.
//
// The batch is spread over XLA's intra-op thread pool (the CPU client's threads) with each
// product a single-threaded GEMM: OpenBLAS's own threads are set to one when the library loads
// (this OpenBLAS copy serves this library only; numpy and scipy load their own). Work sharing
// never waits on a task that has not started (an atomic next-index; the calling thread takes
// products too), so concurrent calls cannot deadlock on a small pool.
// Built by `python -m mutransfer.native.build` (make setup); loaded by mutransfer/cpu_gemm.py.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

#include "cblas.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;


namespace {

struct Work {
  std::atomic<int64_t> next{0};
  int64_t total = 0;
  std::mutex mu;
  std::condition_variable cv;
  int64_t done = 0;  // guarded by mu
};

template <typename T>
void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, const T* b, T* c);

template <>
void Gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c) {
  scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a,
              ta ? m : k, b, tb ? k : n, 0.0f, c, n);
}

template <>
void Gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double* a, const double* b, double* c) {
  scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0, a,
              ta ? m : k, b, tb ? k : n, 0.0, c, n);
}

template <typename T>
void Run(ffi::ThreadPool& pool, bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k, const T* a,
         const T* b, T* c) {
  const int64_t sa = m * k, sb = k * n, sc = m * n;
  int64_t threads = pool.num_threads();
  // Chunks of products: a few per thread, so that uneven thread speed evens out.
  int64_t chunks = threads > 1 ? std::min<int64_t>(batch, threads * 4) : 1;
  if (chunks <= 1) {
    for (int64_t g = 0; g < batch; ++g) Gemm<T>(ta, tb, m, n, k, a + g * sa, b + g * sb, c + g * sc);
    return;
  }
  auto work = std::make_shared<Work>();
  work->total = chunks;
  auto body = [=](Work& w) {
    for (int64_t i; (i = w.next.fetch_add(1)) < chunks;) {
      int64_t lo = batch * i / chunks, hi = batch * (i + 1) / chunks;
      for (int64_t g = lo; g < hi; ++g) Gemm<T>(ta, tb, m, n, k, a + g * sa, b + g * sb, c + g * sc);
      std::lock_guard<std::mutex> lock(w.mu);
      if (++w.done == chunks) w.cv.notify_all();
    }
  };
  for (int64_t t = 0; t < std::min(threads, chunks) - 1; ++t) pool.Schedule([work, body] { body(*work); });
  body(*work);
  std::unique_lock<std::mutex> lock(work->mu);
  work->cv.wait(lock, [&] { return work->done == chunks; });
}

ffi::Error BmmImpl(ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> c,
                   int32_t trans_a, int32_t trans_b) {
  auto da = a.dimensions(), db = b.dimensions(), dc = c->dimensions();
  int64_t r = da.size();
  if (r < 2 || db.size() != r || dc.size() != r) return ffi::Error::InvalidArgument("bmm: operands of unequal rank < 2");
  int64_t batch = 1;
  for (int64_t i = 0; i < r - 2; ++i) {
    if (da[i] != db[i] || da[i] != dc[i]) return ffi::Error::InvalidArgument("bmm: batch dimensions differ");
    batch *= da[i];
  }
  int64_t m = trans_a ? da[r - 1] : da[r - 2], k = trans_a ? da[r - 2] : da[r - 1];
  int64_t kb = trans_b ? db[r - 1] : db[r - 2], n = trans_b ? db[r - 2] : db[r - 1];
  if (k != kb || dc[r - 2] != m || dc[r - 1] != n) return ffi::Error::InvalidArgument("bmm: inner dimensions differ");
  if (a.element_type() != b.element_type() || a.element_type() != c->element_type())
    return ffi::Error::InvalidArgument("bmm: operand types differ");
  if (batch == 0 || m == 0 || n == 0) return ffi::Error::Success();
  switch (a.element_type()) {
    case ffi::DataType::F32:
      Run<float>(pool, trans_a, trans_b, batch, m, n, k, static_cast<const float*>(a.untyped_data()),
                 static_cast<const float*>(b.untyped_data()), static_cast<float*>(c->untyped_data()));
      break;
    case ffi::DataType::F64:
      Run<double>(pool, trans_a, trans_b, batch, m, n, k, static_cast<const double*>(a.untyped_data()),
                  static_cast<const double*>(b.untyped_data()), static_cast<double*>(c->untyped_data()));
      break;
    default:
      return ffi::Error::InvalidArgument("bmm: float32 or float64 only");
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MutransferBmm, BmmImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("trans_a")
                                  .Attr<int32_t>("trans_b"));

// One OpenBLAS thread per product (the batch is spread over XLA's threads instead).
extern "C" __attribute__((visibility("default"))) void mutransfer_bmm_init() { scipy_openblas_set_num_threads(1); }
