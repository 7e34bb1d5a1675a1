//! Tensor helpers shared by several stages: the raster-order grid <-> rows layout every tokenizer
//! uses between its encoder, quantizer and decoder, and the cosine nearest code of VQ-KD and Cluster.
use burn::prelude::*;

/// `[b, d, g, g]` -> `[b * g * g, d]` in raster order (row-major over the grid).
pub fn grid_to_rows(z: Tensor<4>) -> Tensor<2> {
    let [b, d, g, _] = z.dims();
    z.permute([0, 2, 3, 1]).reshape([b * g * g, d])
}

/// Inverse of [`grid_to_rows`].
pub fn rows_to_grid(z: Tensor<2>, b: usize, g: usize) -> Tensor<4> {
    let [_, d] = z.dims();
    z.reshape([b, g, g, d]).permute([0, 3, 1, 2])
}

/// Rows divided by their L2 norm.
pub fn l2_normalize(z: Tensor<2>) -> Tensor<2> {
    let n = z.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    z / n
}

/// Nearest code by cosine similarity (codebook rows are unit vectors): `[n, d]` -> `[n]`.
pub fn nearest_cosine(z: Tensor<2>, codebook: Tensor<2>) -> Tensor<1, Int> {
    l2_normalize(z).matmul(codebook.transpose()).argmax(1).flatten(0, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_grid_are_inverse_and_raster_ordered() {
        let d = Device::flex();
        // [1, 2, 2, 2]: channel 0 holds 0..4, channel 1 holds 10..14
        let g = Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 1., 2., 3., 10., 11., 12., 13.], [1, 2, 2, 2]), &d);
        let rows = grid_to_rows(g.clone());
        let r: Vec<f32> = rows.clone().into_data().try_to_vec().unwrap();
        assert_eq!(r, vec![0., 10., 1., 11., 2., 12., 3., 13.]);
        let back: Vec<f32> = rows_to_grid(rows, 1, 2).into_data().try_to_vec().unwrap();
        assert_eq!(back, g.into_data().try_to_vec::<f32>().unwrap());
    }

    #[test]
    fn cosine_assignment_matches_hand_computation() {
        let d = Device::flex();
        // codes: +x, +y, -x (unit)
        let c = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, -1.0, 0.0], [3, 2]), &d);
        let z = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 1.0, 0.1, 2.0, -5.0, 4.0, 10.0, 9.0], [4, 2]), &d);
        let t: Vec<i64> = nearest_cosine(z, c).into_data().convert::<i64>().try_to_vec().unwrap();
        // cos to (+x, +y, -x): row0 (.95,.32,-.95) -> 0; row1 (.05,.999,..) -> 1; row2 (-.78,.62,.78) -> 2; row3 -> 0
        assert_eq!(t, vec![0, 1, 2, 0]);
    }
}
