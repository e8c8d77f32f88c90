//! Node-classification GNNs on candle with autograd: GCN (Kipf & Welling 2017), GraphSAGE-mean (Hamilton et al.
//! 2017) and GIN-0 (Xu et al. 2019). Every aggregation is one [`crate::sparse::spmm`] call, so gradients reach the
//! node features and the per-edge weights (the MoG router and the gradient criterion use the latter).
use crate::error::{invalid, Result};
use crate::sparse::{spmm, Pattern};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{Linear, Module, Optimizer};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Which GNN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Graph convolutional network: `Â H W` with `Â = D̃^{-1/2}(A + I)D̃^{-1/2}`.
    Gcn,
    /// GraphSAGE with mean aggregation: `H W_self + mean_j(H_j) W_neigh`.
    Sage,
    /// GIN-0: `MLP(H + Σ_j H_j)`.
    Gin,
}

impl std::str::FromStr for ModelKind {
    type Err = crate::error::GraphError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "gcn" => Ok(ModelKind::Gcn),
            "sage" | "graphsage" => Ok(ModelKind::Sage),
            "gin" => Ok(ModelKind::Gin),
            _ => invalid!("unknown model {s:?} (expected gcn, sage or gin)"),
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Gcn => "gcn",
            ModelKind::Sage => "sage",
            ModelKind::Gin => "gin",
        })
    }
}

/// The aggregation operator of one model kind on one edge pattern: normalisation coefficients per edge (and per
/// node for GCN's self-loop). An optional per-edge gate multiplies the coefficients.
pub struct Propagation {
    /// The message pattern (`i ← j`), without self-loops.
    pub pattern: Arc<Pattern>,
    base: Tensor,
    self_scale: Option<Tensor>,
}

impl Propagation {
    /// Normalisation of `kind` on `pattern` (degrees counted on the pattern itself, i.e. on the sparsified graph).
    pub fn new(kind: ModelKind, pattern: Arc<Pattern>) -> Result<Self> {
        let deg = pattern.degrees();
        let dev = Device::Cpu;
        let mut base = Vec::with_capacity(pattern.nnz());
        for i in 0..pattern.n {
            for e in pattern.row_ptr[i]..pattern.row_ptr[i + 1] {
                let j = pattern.col[e] as usize;
                base.push(match kind {
                    ModelKind::Gcn => 1.0 / (((deg[i] + 1) * (deg[j] + 1)) as f32).sqrt(),
                    ModelKind::Sage => 1.0 / deg[i].max(1) as f32,
                    ModelKind::Gin => 1.0,
                });
            }
        }
        let self_scale = match kind {
            ModelKind::Gcn => {
                let s: Vec<f32> = deg.iter().map(|&d| 1.0 / (d + 1) as f32).collect();
                Some(Tensor::from_vec(s, (pattern.n, 1), &dev)?)
            }
            _ => None,
        };
        let base = Tensor::from_vec(base, pattern.nnz(), &dev)?;
        Ok(Propagation {
            pattern,
            base,
            self_scale,
        })
    }
    /// Number of edges.
    pub fn nnz(&self) -> usize {
        self.pattern.nnz()
    }
    /// `Â h`, with edge coefficients multiplied by `gate` when given.
    pub fn apply(&self, h: &Tensor, gate: Option<&Tensor>) -> Result<Tensor> {
        let w = match gate {
            Some(g) => (&self.base * g)?,
            None => self.base.clone(),
        };
        let mut y = spmm(&self.pattern, h, &w)?;
        if let Some(s) = &self.self_scale {
            y = (y + h.broadcast_mul(s)?)?;
        }
        Ok(y)
    }
}

/// A two-layer GNN.
pub struct Gnn {
    /// Which model.
    pub kind: ModelKind,
    layers: Vec<Layer>,
    dropout: f32,
}

enum Layer {
    Gcn(Linear),
    Sage { self_lin: Linear, neigh: Linear },
    Gin { a: Linear, b: Linear },
}

/// Trainable parameters, initialised from a seeded generator (candle's own initialisers are unseeded).
pub struct Params {
    /// Every trainable variable.
    pub vars: Vec<Var>,
    rng: ChaCha8Rng,
}

impl Params {
    /// An empty set whose initial values derive from `seed`.
    pub fn new(seed: u64) -> Self {
        Params {
            vars: Vec::new(),
            rng: tessera_core::rng::derived(seed, "params"),
        }
    }
    /// A new variable with entries uniform in `[-bound, bound]`.
    pub fn uniform(&mut self, shape: &[usize], bound: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.rng.gen_range(-bound..=bound)).collect();
        self.push(Tensor::from_vec(v, shape, &Device::Cpu)?)
    }
    /// A new zero-initialised variable.
    pub fn zeros(&mut self, shape: &[usize]) -> Result<Tensor> {
        self.push(Tensor::zeros(shape, DType::F32, &Device::Cpu)?)
    }
    fn push(&mut self, t: Tensor) -> Result<Tensor> {
        let v = Var::from_tensor(&t)?;
        let t = v.as_tensor().clone();
        self.vars.push(v);
        Ok(t)
    }
}

/// A linear layer with PyTorch's default (Kaiming-uniform) bounds.
fn lin(ps: &mut Params, i: usize, o: usize, bias: bool) -> Result<Linear> {
    let bound = 1.0 / (i.max(1) as f32).sqrt();
    let w = ps.uniform(&[o, i], bound)?;
    let b = if bias {
        Some(ps.uniform(&[o], bound)?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

/// Widest GNN layer (input features included).
pub const MAX_WIDTH: usize = 1 << 16;

impl Gnn {
    /// A fresh model with parameters added to `ps`.
    pub fn new(kind: ModelKind, ps: &mut Params, dims: &[usize], dropout: f32) -> Result<Self> {
        if dims.len() < 2 {
            invalid!("a GNN needs at least input and output widths");
        }
        // Bound every width before a weight is sized from it (a hostile --hidden would overflow the allocation).
        if let Some(w) = dims.iter().find(|&&w| w == 0 || w > MAX_WIDTH) {
            invalid!("layer width {w} out of range 1..={MAX_WIDTH}");
        }
        let mut layers = Vec::new();
        for w in dims.windows(2) {
            let (i, o) = (w[0], w[1]);
            layers.push(match kind {
                ModelKind::Gcn => Layer::Gcn(lin(ps, i, o, true)?),
                ModelKind::Sage => Layer::Sage {
                    self_lin: lin(ps, i, o, true)?,
                    neigh: lin(ps, i, o, false)?,
                },
                ModelKind::Gin => Layer::Gin {
                    a: lin(ps, i, o, true)?,
                    b: lin(ps, o, o, true)?,
                },
            });
        }
        Ok(Gnn {
            kind,
            layers,
            dropout,
        })
    }

    /// Logits for every node. `rng` enables dropout (training); `None` is inference.
    pub fn forward(
        &self,
        x: &Input,
        prop: &Propagation,
        gate: Option<&Tensor>,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            if let Some(r) = rng.as_deref_mut() {
                h = h.dropout(self.dropout, r)?;
            }
            // Linear maps commute with aggregation, so transform first: the sparse product then runs on the
            // narrower width.
            let out = match layer {
                Layer::Gcn(lin) => prop.apply(&h.linear(lin, true)?, gate)?,
                Layer::Sage { self_lin, neigh } => {
                    (h.linear(self_lin, true)? + prop.apply(&h.linear(neigh, false)?, gate)?)?
                }
                Layer::Gin { a, b } => {
                    let z = h.linear(a, false)?;
                    let z = (&z + prop.apply(&z, gate)?)?;
                    let z = match a.bias() {
                        Some(bias) => z.broadcast_add(bias)?,
                        None => z,
                    };
                    b.forward(&z.relu()?)?
                }
            };
            h = Input::Dense(if l < last { out.relu()? } else { out });
        }
        match h {
            Input::Dense(t) => Ok(t),
            Input::Sparse { .. } => invalid!("a GNN needs at least one layer"),
        }
    }
}

/// Node features: dense, or a sparse matrix (bag-of-words features are ~1% dense; multiplying them sparsely
/// makes the first layer about 50× cheaper).
#[derive(Clone)]
pub enum Input {
    /// `(n, f)` dense features.
    Dense(Tensor),
    /// Sparse `n × f` features: pattern plus one value per nonzero.
    Sparse {
        /// Nonzero positions (rows = nodes, columns = features).
        pattern: Arc<Pattern>,
        /// Nonzero values.
        values: Tensor,
    },
}

impl Input {
    fn dropout(&self, p: f32, rng: &mut ChaCha8Rng) -> Result<Input> {
        Ok(match self {
            Input::Dense(t) => Input::Dense(dropout(t, p, rng)?),
            // Dropping a nonzero of a sparse matrix is dropping that entry; zeros stay zero.
            Input::Sparse { pattern, values } => Input::Sparse {
                pattern: pattern.clone(),
                values: dropout(values, p, rng)?,
            },
        })
    }
    /// `self · Wᵀ (+ b)`.
    pub fn linear(&self, lin: &Linear, bias: bool) -> Result<Tensor> {
        let y = match self {
            Input::Dense(t) => t.matmul(&lin.weight().t()?)?,
            Input::Sparse { pattern, values } => spmm(pattern, &lin.weight().t()?, values)?,
        };
        Ok(match (bias, lin.bias()) {
            (true, Some(b)) => y.broadcast_add(b)?,
            _ => y,
        })
    }
}

/// Inverted dropout with a seeded mask (candle's own dropout draws from an unseeded generator).
pub fn dropout(h: &Tensor, p: f32, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(h.clone());
    }
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..h.elem_count())
        .map(|_| if rng.gen::<f32>() < p { 0.0 } else { scale })
        .collect();
    Ok((h * Tensor::from_vec(mask, h.shape(), h.device())?)?)
}

/// Training settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainConfig {
    /// Hidden width.
    pub hidden: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Dropout probability.
    pub dropout: f32,
    /// Epoch limit.
    pub max_epochs: usize,
    /// Stop after this many epochs without a better validation accuracy.
    pub patience: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            hidden: 64,
            lr: 0.01,
            weight_decay: 5e-4,
            dropout: 0.5,
            max_epochs: 200,
            patience: 50,
        }
    }
}

/// Node ids and labels as tensors.
pub struct Targets {
    ids: Tensor,
    labels: Tensor,
    ids_host: Vec<u32>,
    labels_host: Vec<u32>,
}

impl Targets {
    /// Targets for `ids` with labels from `all_labels`.
    pub fn new(ids: &[u32], all_labels: &[u32]) -> Result<Self> {
        let labels_host: Vec<u32> = ids.iter().map(|&i| all_labels[i as usize]).collect();
        Ok(Targets {
            ids: Tensor::from_vec(ids.to_vec(), ids.len(), &Device::Cpu)?,
            labels: Tensor::from_vec(labels_host.clone(), ids.len(), &Device::Cpu)?,
            ids_host: ids.to_vec(),
            labels_host,
        })
    }
    /// Mean cross-entropy of `logits` on these nodes.
    pub fn loss(&self, logits: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::loss::cross_entropy(
            &logits.index_select(&self.ids, 0)?,
            &self.labels,
        )?)
    }
    /// Accuracy of `pred` (argmax per node, all nodes) on these nodes.
    pub fn accuracy(&self, pred: &[u32]) -> f64 {
        if self.ids_host.is_empty() {
            return 0.0;
        }
        let ok = self
            .ids_host
            .iter()
            .zip(&self.labels_host)
            .filter(|(&i, &y)| pred[i as usize] == y)
            .count();
        ok as f64 / self.ids_host.len() as f64
    }
}

/// Argmax per row.
pub fn predictions(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}

/// What one epoch trains on: the aggregation operator, an optional per-edge gate, and an optional auxiliary loss.
pub struct EpochGraph {
    /// Aggregation operator.
    pub prop: Arc<Propagation>,
    /// Per-edge multiplicative gate (differentiable), if any.
    pub gate: Option<Tensor>,
    /// Extra loss term (e.g. the router's load-balancing loss).
    pub aux_loss: Option<Tensor>,
}

/// Supplies the graph for each epoch: fixed for plain training, refreshed by MoG.
pub trait EdgeSource {
    /// The graph for `epoch`; `training` is false for the evaluation pass.
    fn epoch_graph(&mut self, epoch: usize, training: bool) -> Result<EpochGraph>;
    /// Called when an epoch becomes the best so far on validation.
    fn mark_best(&mut self, _epoch: usize) {}
}

/// A fixed graph.
pub struct FixedGraph(pub Arc<Propagation>);

impl EdgeSource for FixedGraph {
    fn epoch_graph(&mut self, _: usize, _: bool) -> Result<EpochGraph> {
        Ok(EpochGraph {
            prop: self.0.clone(),
            gate: None,
            aux_loss: None,
        })
    }
}

/// A fixed graph whose edges carry fixed (detached) message weights.
pub struct FixedGatedGraph(pub Arc<Propagation>, pub Tensor);

impl EdgeSource for FixedGatedGraph {
    fn epoch_graph(&mut self, _: usize, _: bool) -> Result<EpochGraph> {
        Ok(EpochGraph {
            prop: self.0.clone(),
            gate: Some(self.1.clone()),
            aux_loss: None,
        })
    }
}

/// Result of one training run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainOutcome {
    /// Epoch with the best validation accuracy.
    pub best_epoch: usize,
    /// Validation accuracy there.
    pub val_accuracy: f64,
    /// Test accuracy there.
    pub test_accuracy: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Wall time of training, seconds.
    pub train_seconds: f64,
}

/// Full-batch Adam training with early stopping on validation accuracy. `vars` are the model's parameters plus
/// any the edge source trains (e.g. the MoG router).
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &Gnn,
    vars: Vec<Var>,
    x: &Input,
    labels: &[u32],
    split: &crate::data::Split,
    edges: &mut dyn EdgeSource,
    cfg: &TrainConfig,
    seed: u64,
) -> Result<TrainOutcome> {
    let t0 = std::time::Instant::now();
    let train_t = Targets::new(&split.train, labels)?;
    let val_t = Targets::new(&split.val, labels)?;
    let test_t = Targets::new(&split.test, labels)?;
    let params = candle_nn::ParamsAdamW {
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let mut opt = candle_nn::AdamW::new(vars, params)?;
    let mut rng = tessera_core::rng::derived(seed, "train-dropout");
    let mut best = (f64::NEG_INFINITY, f64::INFINITY, 0usize, 0.0f64);
    let mut epochs = 0;
    let trace = std::env::var_os("TESSERA_GRAPH_TRACE").is_some();
    for epoch in 0..cfg.max_epochs {
        epochs = epoch + 1;
        let g = edges.epoch_graph(epoch, true)?;
        let logits = model.forward(x, &g.prop, g.gate.as_ref(), Some(&mut rng))?;
        let mut loss = train_t.loss(&logits)?;
        if let Some(aux) = &g.aux_loss {
            loss = (loss + aux)?;
        }
        opt.backward_step(&loss)?;
        let ge = edges.epoch_graph(epoch, false)?;
        let logits = model.forward(x, &ge.prop, ge.gate.as_ref(), None)?;
        let pred = predictions(&logits)?;
        let val_acc = val_t.accuracy(&pred);
        let val_loss = val_t.loss(&logits)?.to_scalar::<f32>()? as f64;
        if trace {
            eprintln!(
                "epoch {epoch}: train loss {:.4} val acc {val_acc:.4} val loss {val_loss:.4}",
                loss.to_scalar::<f32>()?
            );
        }
        if val_acc > best.0 || (val_acc == best.0 && val_loss < best.1) {
            best = (val_acc, val_loss, epoch, test_t.accuracy(&pred));
            edges.mark_best(epoch);
        } else if epoch - best.2 >= cfg.patience {
            break;
        }
    }
    Ok(TrainOutcome {
        best_epoch: best.2,
        val_accuracy: best.0,
        test_accuracy: best.3,
        epochs,
        train_seconds: t0.elapsed().as_secs_f64(),
    })
}

/// `|∂L_train/∂w_e|` for every edge of `prop`: the gradient magnitude of a unit edge gate at the trained model
/// (the "gradient magnitude" pruning criterion).
pub fn edge_gradient_magnitude(
    model: &Gnn,
    x: &Input,
    prop: &Propagation,
    labels: &[u32],
    train_ids: &[u32],
) -> Result<Vec<f32>> {
    let gate = Var::ones(prop.nnz(), DType::F32, &Device::Cpu)?;
    let logits = model.forward(x, prop, Some(gate.as_tensor()), None)?;
    let loss = Targets::new(train_ids, labels)?.loss(&logits)?;
    let grads = loss.backward()?;
    match grads.get(gate.as_tensor()) {
        Some(g) => Ok(g.abs()?.to_vec1::<f32>()?),
        None => Ok(vec![0.0; prop.nnz()]),
    }
}

/// Median wall time (seconds) of `reps` inference passes.
pub fn time_inference(
    model: &Gnn,
    x: &Input,
    prop: &Propagation,
    gate: Option<&Tensor>,
    reps: usize,
) -> Result<f64> {
    let _ = model.forward(x, prop, gate, None)?; // warm-up
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = std::time::Instant::now();
        let out = model.forward(x, prop, gate, None)?;
        let _ = out.dims();
        ts.push(t.elapsed().as_secs_f64());
    }
    ts.sort_by(|a, b| a.total_cmp(b));
    Ok(ts[ts.len() / 2])
}

/// Median wall times (seconds) of inference on two graphs, measured interleaved (A, B, A, B, ...) so that load
/// changes on a shared machine hit both alike. Returns `(a, b)`.
pub fn time_inference_pair(
    model: &Gnn,
    x: &Input,
    a: (&Propagation, Option<&Tensor>),
    b: (&Propagation, Option<&Tensor>),
    reps: usize,
) -> Result<(f64, f64)> {
    let (ta, tb) = time_inference_pairs(model, x, a, b, reps)?;
    Ok((median(&ta), median(&tb)))
}

/// Wall times (seconds) of `reps` interleaved inference passes on two graphs (A, B, A, B, ...) after one warm-up
/// pass of each, in measurement order: `(a_times, b_times)`, paired by repetition.
pub fn time_inference_pairs(
    model: &Gnn,
    x: &Input,
    a: (&Propagation, Option<&Tensor>),
    b: (&Propagation, Option<&Tensor>),
    reps: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let _ = model.forward(x, a.0, a.1, None)?;
    let _ = model.forward(x, b.0, b.1, None)?;
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        let t = std::time::Instant::now();
        let _ = model.forward(x, a.0, a.1, None)?;
        ta.push(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        let _ = model.forward(x, b.0, b.1, None)?;
        tb.push(t.elapsed().as_secs_f64());
    }
    Ok((ta, tb))
}

/// Median of a non-empty sample (mean of the two middle values for an even count; 0 for an empty one).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|p, q| p.total_cmp(q));
    let k = s.len();
    if k % 2 == 1 {
        s[k / 2]
    } else {
        0.5 * (s[k / 2 - 1] + s[k / 2])
    }
}

/// A pattern holding every directed edge of an undirected graph.
pub fn full_pattern(g: &crate::data::Graph) -> Result<Arc<Pattern>> {
    Pattern::new(g.n, g.row_ptr.clone(), g.col.clone())
}

/// Node features as model input: sparse when under 10% of the entries are nonzero, dense otherwise.
pub fn feature_input(d: &crate::data::Dataset) -> Result<Input> {
    let nnz = d.features.iter().filter(|&&v| v != 0.0).count();
    if nnz * 10 < d.features.len() {
        let f = d.num_features;
        let (mut row_ptr, mut col, mut vals) = (
            vec![0usize],
            Vec::with_capacity(nnz),
            Vec::with_capacity(nnz),
        );
        for row in d.features.chunks(f.max(1)) {
            for (k, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    col.push(k as u32);
                    vals.push(v);
                }
            }
            row_ptr.push(col.len());
        }
        let pattern = Pattern::rect(d.graph.n, f, row_ptr, col)?;
        let values = Tensor::from_vec(vals, nnz, &Device::Cpu)?;
        return Ok(Input::Sparse { pattern, values });
    }
    Ok(Input::Dense(Tensor::from_slice(
        &d.features,
        (d.graph.n, d.num_features),
        &Device::Cpu,
    )?))
}
