//! A small tanh MLP with a softmax cross-entropy head, written directly on faer matrices.
//!
//! Layer `l` holds `W_l` of shape `out × (in + 1)`: the last column is the bias. Its parameters are flattened
//! row-major, so parameter `p = a·(in + 1) + i` is the weight from input `i` (or the bias, `i = in`) to unit `a`.
//! This ordering is the one the layer-wise Hessian blocks in [`crate::hessian`] use.
use faer::Mat;
use rand::Rng;

/// Multi-layer perceptron: tanh hidden layers, linear output, mean softmax cross-entropy loss.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Weight matrices with the bias as last column, one per layer.
    pub layers: Vec<Mat<f64>>,
}

/// Everything the backward passes need from one forward pass over a batch.
#[derive(Debug, Clone)]
pub struct ForwardCache {
    /// Layer inputs with a trailing column of ones, `B × (in + 1)`, one per layer.
    pub inputs: Vec<Mat<f64>>,
    /// Hidden activations `tanh(z)`, `B × width`, one per hidden layer.
    pub hidden: Vec<Mat<f64>>,
    /// Softmax probabilities of the output, `B × classes`.
    pub probs: Mat<f64>,
}

/// Per-sample loss gradients with respect to each layer's pre-activations (`B × out`), already divided by `B`.
pub type Deltas = Vec<Mat<f64>>;

impl Mlp {
    /// Glorot-uniform weights, zero biases, for layer widths `sizes` (e.g. `[64, 16, 16, 10]`).
    pub fn new(sizes: &[usize], seed: u64) -> Self {
        let mut rng = tessera_core::rng::derived(seed, "mlp-init");
        let layers = sizes
            .windows(2)
            .map(|w| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
                Mat::from_fn(fan_out, fan_in + 1, |_, i| {
                    if i == fan_in {
                        0.0
                    } else {
                        rng.gen_range(-bound..bound)
                    }
                })
            })
            .collect();
        Mlp { layers }
    }

    /// Layer widths, input first.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![self.layers[0].ncols() - 1];
        s.extend(self.layers.iter().map(|w| w.nrows()));
        s
    }

    /// Number of parameters in layer `l` (its Hessian block size).
    pub fn block_size(&self, l: usize) -> usize {
        self.layers[l].nrows() * self.layers[l].ncols()
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        (0..self.layers.len()).map(|l| self.block_size(l)).sum()
    }

    /// Forward pass over `x` (`B × in`).
    pub fn forward(&self, x: &Mat<f64>) -> ForwardCache {
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut hidden = Vec::new();
        let mut act = x.clone();
        let last = self.layers.len() - 1;
        let mut logits = Mat::zeros(0, 0);
        for (l, w) in self.layers.iter().enumerate() {
            let aug = with_ones(&act);
            let z = &aug * w.transpose();
            inputs.push(aug);
            if l == last {
                logits = z;
            } else {
                act = Mat::from_fn(z.nrows(), z.ncols(), |n, a| z[(n, a)].tanh());
                hidden.push(act.clone());
            }
        }
        ForwardCache {
            inputs,
            hidden,
            probs: softmax_rows(&logits),
        }
    }

    /// Mean cross-entropy of a forward pass against labels `y`.
    pub fn loss(cache: &ForwardCache, y: &[usize]) -> f64 {
        let b = y.len().max(1) as f64;
        y.iter()
            .enumerate()
            .map(|(n, &c)| -cache.probs[(n, c)].max(1e-300).ln())
            .sum::<f64>()
            / b
    }

    /// Fraction of rows whose arg-max probability is the label.
    pub fn accuracy(cache: &ForwardCache, y: &[usize]) -> f64 {
        let p = &cache.probs;
        let hits = y
            .iter()
            .enumerate()
            .filter(|(n, &c)| (0..p.ncols()).all(|k| p[(*n, k)] <= p[(*n, c)]))
            .count();
        hits as f64 / y.len().max(1) as f64
    }

    /// Backward pass: the pre-activation gradients of every layer (each `B × out`, divided by `B`).
    pub fn deltas(&self, cache: &ForwardCache, y: &[usize]) -> Deltas {
        let b = y.len() as f64;
        let nl = self.layers.len();
        let mut out = vec![Mat::zeros(0, 0); nl];
        let mut d = Mat::from_fn(cache.probs.nrows(), cache.probs.ncols(), |n, k| {
            (cache.probs[(n, k)] - if y[n] == k { 1.0 } else { 0.0 }) / b
        });
        for l in (0..nl).rev() {
            if l > 0 {
                let w = &self.layers[l];
                let in_w = w.ncols() - 1;
                let back = &d * w.subcols(0, in_w);
                let h = &cache.hidden[l - 1];
                let next = Mat::from_fn(back.nrows(), in_w, |n, i| {
                    back[(n, i)] * (1.0 - h[(n, i)] * h[(n, i)])
                });
                out[l] = std::mem::replace(&mut d, next);
            } else {
                out[l] = std::mem::replace(&mut d, Mat::zeros(0, 0));
            }
        }
        out
    }

    /// Flattened gradient of every layer (row-major over `W_l`, see the module docs).
    pub fn gradients(&self, cache: &ForwardCache, deltas: &Deltas) -> Vec<Vec<f64>> {
        deltas
            .iter()
            .zip(&cache.inputs)
            .map(|(d, aug)| {
                let g = d.transpose() * aug;
                flatten(&g)
            })
            .collect()
    }

    /// Subtracts `step` (flattened like the gradient) from layer `l`.
    pub fn apply_update(&mut self, l: usize, step: &[f64]) {
        let w = &mut self.layers[l];
        let cols = w.ncols();
        for (p, s) in step.iter().enumerate() {
            w[(p / cols, p % cols)] -= s;
        }
    }
}

/// Row-major flattening of a matrix.
pub fn flatten(m: &Mat<f64>) -> Vec<f64> {
    let mut v = Vec::with_capacity(m.nrows() * m.ncols());
    for r in 0..m.nrows() {
        for c in 0..m.ncols() {
            v.push(m[(r, c)]);
        }
    }
    v
}

/// `[a, 1]`: appends a column of ones.
pub fn with_ones(a: &Mat<f64>) -> Mat<f64> {
    let c = a.ncols();
    Mat::from_fn(
        a.nrows(),
        c + 1,
        |n, i| if i == c { 1.0 } else { a[(n, i)] },
    )
}

fn softmax_rows(z: &Mat<f64>) -> Mat<f64> {
    let mut p = Mat::zeros(z.nrows(), z.ncols());
    for n in 0..z.nrows() {
        let m = (0..z.ncols())
            .map(|k| z[(n, k)])
            .fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = (0..z.ncols()).map(|k| (z[(n, k)] - m).exp()).sum();
        for k in 0..z.ncols() {
            p[(n, k)] = (z[(n, k)] - m).exp() / s;
        }
    }
    p
}

/// Builds the `B × dim` feature matrix of the examples at `idx`.
pub fn batch_matrix(data: &crate::data::Dataset, idx: &[usize]) -> (Mat<f64>, Vec<usize>) {
    let x = Mat::from_fn(idx.len(), data.dim, |n, i| data.row(idx[n])[i]);
    (x, idx.iter().map(|&i| data.y[i]).collect())
}
