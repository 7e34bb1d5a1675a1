//! Data-parallel training over several devices (`--devices N`), built from burn's own multi-device
//! pieces exactly as burn-train's `MultiDevicesTrainStep` with `MultiDeviceOptim::OptimMainDevice`
//! uses them: each device gets a replica of the model (`Module::fork`) and its share of the batch in
//! a thread of its own, the replicas' gradients are moved to the main device
//! (`GradientsParams::to_device`) and summed (`GradientsAccumulator`), and one optimizer step runs
//! on the main device. (burn-train's `Learner` wants its own data loaders and epochs; Tessera's
//! stages sample their batches by step, so the step is assembled here from the same parts.)
//!
//! Each share's loss is weighted by its part of the batch (`Share::weight`), so the summed gradient
//! is the gradient of the whole batch's loss: the update equals one device's with the whole batch,
//! up to float summation order (tested).
use super::*;
use burn::optim::GradientsAccumulator;
use rayon::prelude::*;

/// The devices of a data-parallel run: the first is the main device (optimizer, checkpoints).
#[derive(Debug, Clone)]
pub struct Devices(pub Vec<Device>);

impl Devices {
    pub fn single(device: &Device) -> Self {
        Devices(vec![device.clone()])
    }
    pub fn main(&self) -> &Device {
        &self.0[0]
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// The same devices with autodiff (training).
    pub fn autodiff(&self) -> Self {
        Devices(self.0.iter().map(|d| d.clone().autodiff()).collect())
    }
}

/// Draws every lazily initialised parameter of a freshly built model now, in module order. burn
/// initialises a parameter on first use; replicas forked in worker threads would draw them in
/// whatever order the threads reach them, so a data-parallel run would start from other weights
/// than a single-device one (and from other weights each time).
pub fn materialise<M: Module>(model: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            let _ = p.val();
        }
    }
    model.visit(&mut Touch);
}

/// Rows `start..start + len` of the batch, computed on `device`.
#[derive(Debug, Clone)]
pub struct Share {
    pub start: usize,
    pub len: usize,
    pub device: Device,
}

/// The batch of `b` rows cut into one contiguous share per device (the first ones one row longer
/// when `b` does not divide); devices beyond `b` get none.
pub fn shares(b: usize, devices: &Devices) -> Vec<Share> {
    let n = devices.len().min(b).max(1);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let len = b / n + usize::from(i < b % n);
            let s = Share { start, len, device: devices.0[i].clone() };
            start += len;
            s
        })
        .collect()
}

/// The gradient of the whole batch: `loss(replica, share)` must return the share's loss already
/// weighted by its part of the batch's loss (e.g. `len / b` for a mean over rows), so that the sum
/// over shares is the batch's loss. Returns the summed gradients on the main device and the
/// (weighted, summed) loss. One device: no thread, no copy.
pub fn batch_grads<M>(model: &M, devices: &Devices, b: usize, loss: impl Fn(&M, &Share) -> Result<Tensor<1>> + Sync) -> Result<(GradientsParams, Tensor<1>)>
where
    M: Module + Sync,
{
    let main = devices.main();
    let parts = shares(b, devices);
    if parts.len() == 1 {
        let l = loss(model, &parts[0])?;
        return Ok((GradientsParams::from_grads(l.backward(), model), l));
    }
    // One rayon task per share, not one OS thread: the command runs on a worker of rayon's pool
    // (main.rs), and a worker blocked joining threads whose kernels wait for that pool would
    // deadlock it at one thread; tasks are run by whichever workers are free, the caller included.
    let outputs: Vec<Result<(GradientsParams, Tensor<1>)>> = parts
        .par_iter()
        .map(|share| {
            let run = || -> Result<(GradientsParams, Tensor<1>)> {
                let replica = model.clone().fork(&share.device);
                let l = loss(&replica, share)?;
                let grads = GradientsParams::from_grads(l.backward(), &replica);
                Ok((grads, l.detach()))
            };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| Err(anyhow::anyhow!("a data-parallel worker panicked")))
        })
        .collect();
    let mut acc = GradientsAccumulator::<M>::new();
    let mut total: Option<Tensor<1>> = None;
    for out in outputs {
        let (grads, l) = out?;
        acc.accumulate(model, grads.to_device(main, model));
        let l = l.to_device(main);
        total = Some(match total {
            Some(t) => t + l,
            None => l,
        });
    }
    Ok((acc.grads(), total.expect("at least one share")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera::proposal::ProposalConfig;
    use tessera::proposal::condition::Condition;

    #[test]
    fn shares_cover_the_batch_once() {
        let four = Devices(vec![Device::flex(); 4]);
        let cut = |b: usize| shares(b, &four).iter().map(|s| (s.start, s.len)).collect::<Vec<_>>();
        assert_eq!(cut(10), [(0, 3), (3, 3), (6, 2), (8, 2)]);
        assert_eq!(cut(2), [(0, 1), (1, 1)], "no empty shares");
        assert_eq!(cut(1), [(0, 1)]);
    }

    /// The summed gradients of 2 and 3 shares equal the whole batch's, parameter by parameter.
    #[test]
    fn shares_sum_to_the_whole_batch_gradient() {
        let d = Device::flex().autodiff();
        let cfg = ProposalConfig { vocab_size: 16, num_classes: 4, block_size: 16, n_layer: 1, n_head: 2, n_embd: 16, text: None };
        let model = cfg.init_gpt(&d).unwrap();
        materialise(&model);
        let b = 8;
        let toks = Tensor::<2, Int>::from_data(TensorData::new((0..b * 16).map(|i| (i * 7 % 16) as i64).collect::<Vec<_>>(), [b, 16]), &d);
        let cond = Condition::Class(Tensor::from_data(TensorData::new((0..b).map(|i| (i % 5) as i64).collect::<Vec<_>>(), [b]), &d));
        let grads = |n: usize| batch_grads(&model, &Devices(vec![d.clone(); n]), b, |m, s| super::super::proposal::ar_share_loss(m, &cond, &toks, s)).unwrap();
        let (g1, l1) = grads(1);
        struct Diff<'a> {
            a: &'a GradientsParams,
            b: &'a GradientsParams,
            max: f32,
            scale: f32,
            params: usize,
        }
        impl burn::module::ModuleVisitor for Diff<'_> {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                let (Some(x), Some(y)) = (self.a.get::<D>(p.id), self.b.get::<D>(p.id)) else { panic!("a parameter without gradient") };
                let (x, y): (Vec<f32>, Vec<f32>) = (x.into_data().convert::<f32>().try_to_vec().unwrap(), y.into_data().convert::<f32>().try_to_vec().unwrap());
                for (u, v) in x.iter().zip(&y) {
                    self.max = self.max.max((u - v).abs());
                    self.scale = self.scale.max(u.abs());
                }
                self.params += 1;
            }
        }
        for n in [2, 3] {
            let (gn, ln) = grads(n);
            let (l1, ln) = (l1.clone().into_scalar::<f32>(), ln.into_scalar::<f32>());
            assert!((l1 - ln).abs() <= 1e-5 * l1, "{n} shares: loss {ln} vs {l1}");
            let mut diff = Diff { a: &g1, b: &gn, max: 0.0, scale: 0.0, params: 0 };
            model.visit(&mut diff);
            assert!(diff.params > 5 && diff.scale > 1e-3, "{} parameters, largest gradient {}", diff.params, diff.scale);
            assert!(diff.max <= 1e-5 * diff.scale.max(1.0), "{n} shares: gradients differ by up to {} (largest {})", diff.max, diff.scale);
        }
    }
}
