"""The Triton kernels of `fuzzgrad.targets.triton_kernels` (imported only where Triton is usable).

Every kernel works on tiles of ``BLOCK_M`` rows by ``BLOCK_N`` columns: a program takes
``BLOCK_M`` rows and walks them in blocks of ``BLOCK_N`` columns, masking the last block. Every
tensor comes with a row and a column stride, so transposed, sliced and stride-0 inputs and
cotangents are read where they lie. The blocks are small on purpose: fuzzgrad's sizes (1-64
along a dim) then reach rows of several blocks and tails of every length. Arithmetic is in
``ACC`` (float64: see `fuzzgrad.targets._triton.acc_dtype`); results are rounded once, on
store. Helpers are mostly inlined: under the interpreter a call of a jitted helper costs about a
millisecond.
"""

from __future__ import annotations

from fuzzgrad.targets._triton import tl, triton

#: The columns one block covers (rows longer than 2 * BLOCK_N = 16 span three blocks or more).
BLOCK_N = 8
#: The rows one program covers (the weight gradient is reduced across these blocks of rows).
BLOCK_M = 8


# --- SwiGLU: silu(a) * b, elementwise ---------------------------------------------------------


@triton.jit
def swiglu_forward(
    A, B, Y, n_rows, n, sar, sac, sbr, sbc, syr, syc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    a_row, b_row = A + rows[:, None] * sar, B + rows[:, None] * sbr
    y_row = Y + rows[:, None] * syr
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        a = tl.load(a_row + cols[None, :] * sac, mask=mask, other=0).to(ACC)
        b = tl.load(b_row + cols[None, :] * sbc, mask=mask, other=0).to(ACC)
        y = a / (1 + tl.exp(-a)) * b
        tl.store(y_row + cols[None, :] * syc, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def swiglu_backward(
    A, B, G, DA, DB, n_rows, n, sar, sac, sbr, sbc, sgr, sgc, sdr, sdc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """da = g b s(a) (1 + a s(-a)), db = g a s(a); DA and DB are dense and laid out alike."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    a_row, b_row = A + rows[:, None] * sar, B + rows[:, None] * sbr
    g_row, d_row = G + rows[:, None] * sgr, rows[:, None] * sdr
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        a = tl.load(a_row + cols[None, :] * sac, mask=mask, other=0).to(ACC)
        b = tl.load(b_row + cols[None, :] * sbc, mask=mask, other=0).to(ACC)
        g = tl.load(g_row + cols[None, :] * sgc, mask=mask, other=0).to(ACC)
        s = 1 / (1 + tl.exp(-a))
        s_neg = 1 / (1 + tl.exp(a))  # 1 - s without the cancellation
        d = d_row + cols[None, :] * sdc
        tl.store(DA + d, (g * b * s * (1 + a * s_neg)).to(DA.dtype.element_ty), mask=mask)
        tl.store(DB + d, (g * a * s).to(DB.dtype.element_ty), mask=mask)


# --- RMSNorm: x / sqrt(mean(x^2) + eps) * w over the last dim --------------------------------


@triton.jit
def rms_norm_forward(
    X, W, Y, RSTD, n_rows, n, sxr, sxc, sw, syr, syc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr, EPS_INV: tl.constexpr,
):  # fmt: skip
    """Y = X * rstd * W; RSTD (dense, ACC) keeps each row's rstd for the backward kernel.
    eps is 1 / EPS_INV rounded once in ACC (a float literal would be rounded to float32 first)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    x_row, y_row = X + rows[:, None] * sxr, Y + rows[:, None] * syr
    sumsq = tl.zeros([BLOCK_M], dtype=ACC)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
        sumsq += tl.sum(x * x, axis=1)
    rstd = 1 / tl.sqrt(sumsq / n + tl.full([BLOCK_M], 1, ACC) / EPS_INV)
    tl.store(RSTD + rows, rstd, mask=rows < n_rows)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
        w = tl.load(W + cols * sw, mask=cols < n, other=0).to(ACC)
        y = x * rstd[:, None] * w[None, :]
        tl.store(y_row + cols[None, :] * syc, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def rms_norm_backward(
    X, W, G, RSTD, DX, DW_PARTIAL, n_rows, n, sxr, sxc, sw, sgr, sgc, sdr, sdc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """dx = rstd (g w - x rstd^2 mean(g w x)). Each program writes its rows' share of dw, the
    sum over its rows of g x rstd, as row ``program_id`` of DW_PARTIAL (dense, ACC), and
    `column_sum` adds the shares up: no atomics, so the result is the same bits every run."""
    block = tl.program_id(0)
    rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
    x_row, g_row = X + rows[:, None] * sxr, G + rows[:, None] * sgr
    rstd = tl.load(RSTD + rows, mask=rows < n_rows, other=0)
    dot = tl.zeros([BLOCK_M], dtype=ACC)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
        g = tl.load(g_row + cols[None, :] * sgc, mask=mask, other=0).to(ACC)
        w = tl.load(W + cols * sw, mask=cols < n, other=0).to(ACC)
        dot += tl.sum(g * w[None, :] * x, axis=1)
    scale = rstd * rstd * dot / n
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
        g = tl.load(g_row + cols[None, :] * sgc, mask=mask, other=0).to(ACC)
        w = tl.load(W + cols * sw, mask=cols < n, other=0).to(ACC)
        dx = rstd[:, None] * (g * w[None, :] - x * scale[:, None])
        tl.store(DX + rows[:, None] * sdr + cols[None, :] * sdc, dx.to(DX.dtype.element_ty), mask)
        dw = tl.sum(g * x * rstd[:, None], axis=0)
        tl.store(DW_PARTIAL + block * n + cols, dw, mask=cols < n)


@triton.jit
def column_sum(
    PARTIAL, OUT, n_rows, n, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr
):
    """OUT[c] = sum over rows of PARTIAL[r, c] (dense), in ACC, rounded once on store."""
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    total = tl.zeros([BLOCK_N], dtype=ACC)
    for start in range(0, n_rows, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        part = tl.load(PARTIAL + rows[:, None] * n + cols[None, :], mask=mask, other=0)
        total += tl.sum(part, axis=0)
    tl.store(OUT + cols, total.to(OUT.dtype.element_ty), mask=cols < n)


# --- row softmax and soft-label cross-entropy: a running max and sum over blocks ---------------


@triton.jit
def _max_and_sum(x_row, sxc, rows, n_rows, n, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 ACC: tl.constexpr):  # fmt: skip
    """Each row's max m and sum(exp(x - m)), in one pass: the sum is rescaled when m grows."""
    m = tl.full([BLOCK_M], float("-inf"), ACC)
    s = tl.zeros([BLOCK_M], dtype=ACC)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
        x = tl.where((cols < n)[None, :], x, float("-inf"))  # rows past n_rows stay finite
        m_new = tl.maximum(m, tl.max(x, axis=1))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new[:, None]), axis=1)
        m = m_new
    return m, s


@triton.jit
def softmax_forward(
    X, Y, n_rows, n, sxr, sxc, syr, syc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    x_row, y_row = X + rows[:, None] * sxr, Y + rows[:, None] * syr
    m, s = _max_and_sum(x_row, sxc, rows, n_rows, n, BLOCK_M, BLOCK_N, ACC)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
        y = tl.exp(x - m[:, None]) / s[:, None]
        tl.store(y_row + cols[None, :] * syc, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def softmax_backward(
    Y, G, DX, n_rows, n, syr, syc, sgr, sgc, sdr, sdc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """dx = y (g - <g, y>), the inner product refined by a second pass over (g - <g, y>), so that
    a g constant along the row gives ~0 rather than |g| times the rounding of sum(y)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    y_row, g_row = Y + rows[:, None] * syr, G + rows[:, None] * sgr
    dot = tl.zeros([BLOCK_M], dtype=ACC)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        y = tl.load(y_row + cols[None, :] * syc, mask=mask, other=0).to(ACC)
        g = tl.load(g_row + cols[None, :] * sgc, mask=mask, other=0).to(ACC)
        dot += tl.sum(y * g, axis=1)
    residue = tl.zeros([BLOCK_M], dtype=ACC)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        y = tl.load(y_row + cols[None, :] * syc, mask=mask, other=0).to(ACC)
        g = tl.load(g_row + cols[None, :] * sgc, mask=mask, other=0).to(ACC)
        residue += tl.sum(y * (g - dot[:, None]), axis=1)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        y = tl.load(y_row + cols[None, :] * syc, mask=mask, other=0).to(ACC)
        g = tl.load(g_row + cols[None, :] * sgc, mask=mask, other=0).to(ACC)
        dx = y * (g - dot[:, None] - residue[:, None])
        tl.store(DX + rows[:, None] * sdr + cols[None, :] * sdc, dx.to(DX.dtype.element_ty), mask)


@triton.jit
def cross_entropy_forward(
    X, T, LOSS, M, LOG_S, n_rows, n, sxr, sxc, str_, stc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """loss = sum_j t_j (logsumexp(x) - x_j), summed as the non-negative (m - x_j) + log(s), so
    nothing cancels; M and LOG_S (dense, ACC) keep m and log(s) for the backward kernel."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    x_row, t_row = X + rows[:, None] * sxr, T + rows[:, None] * str_
    m, s = _max_and_sum(x_row, sxc, rows, n_rows, n, BLOCK_M, BLOCK_N, ACC)
    log_s = tl.log(s)
    loss = tl.zeros([BLOCK_M], dtype=ACC)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
        t = tl.load(t_row + cols[None, :] * stc, mask=mask, other=0).to(ACC)
        loss += tl.sum(t * ((m[:, None] - x) + log_s[:, None]), axis=1)
    tl.store(LOSS + rows, loss.to(LOSS.dtype.element_ty), mask=rows < n_rows)
    tl.store(M + rows, m, mask=rows < n_rows)
    tl.store(LOG_S + rows, log_s, mask=rows < n_rows)


@triton.jit
def cross_entropy_backward(
    X, T, G, M, LOG_S, DX, DT, n_rows, n, sxr, sxc, str_, stc, sg, sdr, sdc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """dx = g (softmax(x) sum(t) - t), dt = g ((m - x) + log(s)); G holds one value per row."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    x_row, t_row = X + rows[:, None] * sxr, T + rows[:, None] * str_
    m = tl.load(M + rows, mask=rows < n_rows, other=0)
    log_s = tl.load(LOG_S + rows, mask=rows < n_rows, other=0)
    g = tl.load(G + rows * sg, mask=rows < n_rows, other=0).to(ACC)
    t_sum = tl.zeros([BLOCK_M], dtype=ACC)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        t_sum += tl.sum(tl.load(t_row + cols[None, :] * stc, mask=mask, other=0).to(ACC), axis=1)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
        t = tl.load(t_row + cols[None, :] * stc, mask=mask, other=0).to(ACC)
        p = tl.exp((x - m[:, None]) - log_s[:, None])
        d = rows[:, None] * sdr + cols[None, :] * sdc
        tl.store(DX + d, (g[:, None] * (p * t_sum[:, None] - t)).to(DX.dtype.element_ty), mask)
        dt = g[:, None] * ((m[:, None] - x) + log_s[:, None])
        tl.store(DT + d, dt.to(DT.dtype.element_ty), mask)
