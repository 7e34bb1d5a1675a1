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
    let outputs: Vec<Result<(GradientsParams, Tensor<1>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .map(|share| {
                let loss = &loss;
                scope.spawn(move || -> Result<(GradientsParams, Tensor<1>)> {
                    let replica = model.clone().fork(&share.device);
                    let l = loss(&replica, share)?;
                    let grads = GradientsParams::from_grads(l.backward(), &replica);
                    Ok((grads, l.detach()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a data-parallel worker panicked")))).collect()
    });
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
