//! Numenta-style anomaly likelihood: raw scores are noisy, so what scores is the mean of the last
//! few raw scores being improbably high against the distribution of such means over a long
//! history. The history is kept as per-block sums, so its mean and variance over thousands of
//! points cost a few hundred bytes and O(1) per point.

use super::stats::{Ring, normal_tail};

/// Most raw scores the short average can span.
pub(crate) const SHORT_MAX: usize = 32;

/// Sum, sum of squares and count of the short means in one block of the history.
#[derive(Debug, Clone, Copy, Default)]
struct Block {
    sum: f64,
    sum_sq: f64,
    n: f64,
}

/// Anomaly likelihood over a sliding history of `blocks × block_len` points.
#[derive(Debug, Clone)]
pub(crate) struct Likelihood {
    raw: Ring<SHORT_MAX>,
    short: usize,
    blocks: Vec<Block>,
    next_block: usize,
    full_blocks: usize,
    current: Block,
    /// Sum of the full blocks in `blocks`.
    history: Block,
    block_len: usize,
    std_floor: f64,
}

impl Likelihood {
    pub(crate) fn new(short: usize, block_len: usize, blocks: usize, std_floor: f64) -> Self {
        Self {
            raw: Ring::new(),
            short: short.clamp(1, SHORT_MAX),
            blocks: vec![Block::default(); blocks.max(1)],
            next_block: 0,
            full_blocks: 0,
            current: Block::default(),
            history: Block::default(),
            block_len: block_len.max(1),
            std_floor,
        }
    }

    /// Adds one raw score in [0, 1] and returns the log-scaled likelihood in [0, 1] of the current
    /// short mean under the history so far (0 while there is no history yet).
    pub(crate) fn update(&mut self, raw: f64) -> f64 {
        self.raw.push(raw);
        let mean = self.raw.mean_last(self.short);
        let score = self.score(mean);
        self.current.sum += mean;
        self.current.sum_sq += mean * mean;
        self.current.n += 1.0;
        if self.current.n as usize >= self.block_len {
            let old = std::mem::replace(&mut self.blocks[self.next_block], self.current);
            if self.full_blocks == self.blocks.len() {
                self.history.sum -= old.sum;
                self.history.sum_sq -= old.sum_sq;
                self.history.n -= old.n;
            }
            self.history.sum += self.current.sum;
            self.history.sum_sq += self.current.sum_sq;
            self.history.n += self.current.n;
            self.next_block = (self.next_block + 1) % self.blocks.len();
            self.full_blocks = (self.full_blocks + 1).min(self.blocks.len());
            self.current = Block::default();
        }
        score
    }

    /// Log-likelihood score of a short mean: `ln(Q(z) + 1e-10) / ln(1e-10)`.
    fn score(&self, mean: f64) -> f64 {
        if self.full_blocks == 0 {
            return 0.0;
        }
        let total = Block {
            sum: self.history.sum + self.current.sum,
            sum_sq: self.history.sum_sq + self.current.sum_sq,
            n: self.history.n + self.current.n,
        };
        let mu = total.sum / total.n;
        let var = (total.sum_sq / total.n - mu * mu).max(0.0);
        if mean <= mu {
            // Not above its usual level: nothing to report (and a flat line scores exactly 0).
            return 0.0;
        }
        let sd = var.sqrt().max(self.std_floor);
        let tail = normal_tail((mean - mu) / sd);
        ((tail + 1e-10).ln() / 1e-10f64.ln()).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_rise_scores_high_and_noise_does_not() {
        let mut l = Likelihood::new(10, 50, 20, 0.01);
        let mut max_quiet: f64 = 0.0;
        for i in 0..2000 {
            let raw = if i % 7 == 0 { 0.3 } else { 0.1 };
            let s = l.update(raw);
            if i > 100 {
                max_quiet = max_quiet.max(s);
            }
        }
        assert!(max_quiet < 0.3, "{max_quiet}");
        let mut peak: f64 = 0.0;
        for _ in 0..10 {
            peak = peak.max(l.update(0.9));
        }
        assert!(peak > 0.9, "{peak}");
    }
}
