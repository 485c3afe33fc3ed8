/* The 2-D transpose that every large relayout between PyTorch's (out, in) and TF's (in, out)
 * takes (ir/layout.py). numpy's strided copy moves 0.4-2 GB/s here; this moves 4-5 GB/s fp32
 * and 5 bf16 on one core, with the GIL released, so two threads transpose at once.
 *
 * It goes a panel at a time: P source rows whose P elements fill whole 64-byte cache lines of
 * each destination row (16 rows of 4 bytes: one line; 128 of 2: four lines, the panel taken
 * 64 columns at a time so that its source lines stay in the cache; 8 of 8, 64 of 1). Every
 * destination line is then written whole in one short burst, and the panel's source lines are
 * read from the cache. Within a panel, SSE2 (every x86-64 CPU has it) transposes 4x4 blocks of
 * 4-byte and 8x8 blocks of 2-byte elements in registers; rows left over go in panels of one
 * block; 8-byte and 1-byte elements, the edges, and CPUs without SSE2 take the same loop
 * element by element (bit for bit the same result).
 *
 * Measured on the 2-core VM this was written on, (8192, 2048) from memory: fp32 4.0-5.5 GB/s
 * (AVX2 8x8 blocks 3.4-3.7, or 5.8 in 64x64 tiles; non-temporal stores 2.6; 32x32 tiles without
 * panels 3.0), bf16 4.6-5.0 (32-row panels over all the columns, as fp32's: 3.5-3.8).
 * Only the Python buffer protocol is used: no numpy C API, nothing to build against.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* dst[dst_start + c * ds + r] = src[r * cols + c] for r < rows, c < cols (in elements). */

#define SCALAR(T, s, ss, d, ds, r0, r1, c0, c1)                        \
    for (size_t c_ = (c0); c_ < (c1); c_++)                             \
        for (size_t r_ = (r0); r_ < (r1); r_++)                         \
            ((T *)(d))[c_ * (ds) + r_] = ((const T *)(s))[r_ * (ss) + c_]

#if defined(__SSE2__)
static inline void
block4x4(const uint32_t *s, size_t ss, uint32_t *d, size_t ds)
{
    __m128 a = _mm_loadu_ps((const float *)(s));
    __m128 b = _mm_loadu_ps((const float *)(s + ss));
    __m128 e = _mm_loadu_ps((const float *)(s + 2 * ss));
    __m128 f = _mm_loadu_ps((const float *)(s + 3 * ss));
    _MM_TRANSPOSE4_PS(a, b, e, f);
    _mm_storeu_ps((float *)(d), a);
    _mm_storeu_ps((float *)(d + ds), b);
    _mm_storeu_ps((float *)(d + 2 * ds), e);
    _mm_storeu_ps((float *)(d + 3 * ds), f);
}

static inline void
block8x8(const uint16_t *s, size_t ss, uint16_t *d, size_t ds)
{
    __m128i x0 = _mm_loadu_si128((const __m128i *)(s));
    __m128i x1 = _mm_loadu_si128((const __m128i *)(s + ss));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(s + 2 * ss));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(s + 3 * ss));
    __m128i x4 = _mm_loadu_si128((const __m128i *)(s + 4 * ss));
    __m128i x5 = _mm_loadu_si128((const __m128i *)(s + 5 * ss));
    __m128i x6 = _mm_loadu_si128((const __m128i *)(s + 6 * ss));
    __m128i x7 = _mm_loadu_si128((const __m128i *)(s + 7 * ss));
    __m128i a0 = _mm_unpacklo_epi16(x0, x1), a1 = _mm_unpackhi_epi16(x0, x1);
    __m128i a2 = _mm_unpacklo_epi16(x2, x3), a3 = _mm_unpackhi_epi16(x2, x3);
    __m128i a4 = _mm_unpacklo_epi16(x4, x5), a5 = _mm_unpackhi_epi16(x4, x5);
    __m128i a6 = _mm_unpacklo_epi16(x6, x7), a7 = _mm_unpackhi_epi16(x6, x7);
    __m128i b0 = _mm_unpacklo_epi32(a0, a2), b1 = _mm_unpackhi_epi32(a0, a2);
    __m128i b2 = _mm_unpacklo_epi32(a1, a3), b3 = _mm_unpackhi_epi32(a1, a3);
    __m128i b4 = _mm_unpacklo_epi32(a4, a6), b5 = _mm_unpackhi_epi32(a4, a6);
    __m128i b6 = _mm_unpacklo_epi32(a5, a7), b7 = _mm_unpackhi_epi32(a5, a7);
    _mm_storeu_si128((__m128i *)(d), _mm_unpacklo_epi64(b0, b4));
    _mm_storeu_si128((__m128i *)(d + ds), _mm_unpackhi_epi64(b0, b4));
    _mm_storeu_si128((__m128i *)(d + 2 * ds), _mm_unpacklo_epi64(b1, b5));
    _mm_storeu_si128((__m128i *)(d + 3 * ds), _mm_unpackhi_epi64(b1, b5));
    _mm_storeu_si128((__m128i *)(d + 4 * ds), _mm_unpacklo_epi64(b2, b6));
    _mm_storeu_si128((__m128i *)(d + 5 * ds), _mm_unpackhi_epi64(b2, b6));
    _mm_storeu_si128((__m128i *)(d + 6 * ds), _mm_unpacklo_epi64(b3, b7));
    _mm_storeu_si128((__m128i *)(d + 7 * ds), _mm_unpackhi_epi64(b3, b7));
}
#endif

/* Rows r0..r1 of the source, `cb` columns at a time: K x K register blocks (`block`) where SSE2
 * is there (K = 0: none), then the columns left over, element by element. */
#if defined(__SSE2__)
#define BLOCKS(T, K, block, r0, r1, c, ce)                               \
    for (; (K) > 0 && c + (K) <= (ce); c += (K))                         \
        for (size_t r = (r0); r < (r1); r += (K))                        \
            block(s + r * cols + c, cols, d + c * ds + r, ds)
#else
#define BLOCKS(T, K, block, r0, r1, c, ce)
#endif
#define TILES(T, K, block, r0, r1, cb)                                   \
    for (size_t t0 = 0; t0 < cols; t0 += (cb)) {                         \
        size_t ce = t0 + (cb) < cols ? t0 + (cb) : cols, c = t0;         \
        BLOCKS(T, K, block, r0, r1, c, ce);                              \
        SCALAR(T, s, cols, d, ds, r0, r1, c, ce);                        \
    }
/* Panels of P source rows, CB columns of them at a time (CB = 0: all), then the rows left
 * over in panels of K, then the last rows element by element. */
#define PANELS(name, T, P, CB, K, block)                                 \
    static void name(const T *s, T *d, size_t rows, size_t cols, size_t ds) \
    {                                                                    \
        const size_t P_ = (P), K_ = (K), CB_ = (CB) ? (CB) : cols;       \
        size_t r0 = 0;                                                   \
        for (; r0 + P_ <= rows; r0 += P_)                                \
            TILES(T, K, block, r0, r0 + P_, CB_);                        \
        for (; K_ > 0 && r0 + K_ <= rows; r0 += K_)                      \
            TILES(T, K, block, r0, r0 + K_, cols);                       \
        SCALAR(T, s, cols, d, ds, r0, rows, 0, cols);                    \
    }

#define NO_BLOCK(s, ss, d, ds) ((void)0)
/* fp32: 16-row panels (one 64-byte line of each destination row) over all the columns;
 * 2-byte: 128-row panels 64 columns at a time (four lines of each of 64 destination rows:
 * 4.9 GB/s here where 32-row panels over all the columns moved 3.7). */
PANELS(transpose32, uint32_t, 16, 0, 4, block4x4)
PANELS(transpose16, uint16_t, 128, 64, 8, block8x8)
PANELS(transpose64, uint64_t, 8, 0, 0, NO_BLOCK)
PANELS(transpose8, uint8_t, 64, 0, 0, NO_BLOCK)

PyDoc_STRVAR(transpose_doc,
"transpose(src, dst, rows, cols, itemsize, dst_stride, dst_start)\n--\n\n"
"Write the transpose of the C-order (rows, cols) array of itemsize-byte elements in the\n"
"buffer src into the writable buffer dst: element (r, c) of src goes to element\n"
"dst_start + c * dst_stride + r of dst. itemsize is 1, 2, 4 or 8; dst_stride >= rows.\n"
"Raises ValueError, touching nothing, when either buffer is too small for that.");

static PyObject *
transpose(PyObject *module, PyObject *args)
{
    Py_buffer src, dst;
    Py_ssize_t rows, cols, itemsize, ds, start;
    if (!PyArg_ParseTuple(args, "y*w*nnnnn:transpose", &src, &dst, &rows, &cols, &itemsize,
                          &ds, &start))
        return NULL;
    const char *bad = NULL;
    size_t n = (size_t)itemsize;
    if (!(itemsize == 1 || itemsize == 2 || itemsize == 4 || itemsize == 8))
        bad = "itemsize must be 1, 2, 4 or 8";
    else if (rows < 0 || cols < 0 || start < 0 || ds < rows)
        bad = "need rows, cols, dst_start >= 0 and dst_stride >= rows";
    else if (rows > 0 && cols > 0) {
        /* Every product below is bounded by a buffer's length before it is formed. */
        size_t r = (size_t)rows, c = (size_t)cols, st = (size_t)ds, s0 = (size_t)start;
        size_t src_items = (size_t)src.len / n, dst_items = (size_t)dst.len / n;
        if (c > src_items / r)
            bad = "src is smaller than rows * cols elements";
        else if (s0 > dst_items || r > dst_items - s0 || c - 1 > (dst_items - s0 - r) / st)
            bad = "dst is too small for the transpose at dst_start";
        else if (((uintptr_t)src.buf | (uintptr_t)dst.buf) % n)
            bad = "buffers must be aligned to itemsize";
        else if ((const char *)src.buf < (const char *)dst.buf + dst.len
                 && (const char *)dst.buf < (const char *)src.buf + src.len)
            bad = "src and dst overlap";
    }
    if (bad == NULL && rows > 0 && cols > 0) {
        size_t r = (size_t)rows, c = (size_t)cols, st = (size_t)ds;
        Py_BEGIN_ALLOW_THREADS
        switch (itemsize) {
        case 4:
            transpose32(src.buf, (uint32_t *)dst.buf + start, r, c, st);
            break;
        case 2:
            transpose16(src.buf, (uint16_t *)dst.buf + start, r, c, st);
            break;
        case 8:
            transpose64(src.buf, (uint64_t *)dst.buf + start, r, c, st);
            break;
        default:
            transpose8(src.buf, (uint8_t *)dst.buf + start, r, c, st);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    if (bad != NULL) {
        PyErr_SetString(PyExc_ValueError, bad);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"transpose", transpose, METH_VARARGS, transpose_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_transpose",
    "A cache-friendly 2-D transpose of 1/2/4/8-byte elements, the GIL released.", -1, methods,
};

PyMODINIT_FUNC
PyInit__transpose(void)
{
    return PyModule_Create(&module);
}
