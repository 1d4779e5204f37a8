//! The public products check their buffers in release builds: a caller that passes too few
//! inputs or outputs gets a panic naming the buffer, never a write out of bounds.

use rwkv_model::linalg::{Mat, linear, linear_rounded};

/// A 3-output, 4-input matrix.
fn mat() -> Mat {
    Mat::new(3, 4, (0..12).map(|i| i as f32).collect())
}

#[test]
fn linear_computes_with_buffers_of_the_right_size() {
    let mut y = vec![0.0; 3];
    linear(&[1.0, 0.0, 0.0, 0.0], 1, &mat(), &mut y);
    assert_eq!(y, [0.0, 4.0, 8.0]);
}

#[test]
#[should_panic(expected = "inputs are rows × cols")]
fn linear_refuses_too_few_inputs() {
    let mut y = vec![0.0; 6];
    linear(&[0.0; 7], 2, &mat(), &mut y);
}

#[test]
#[should_panic(expected = "outputs are rows × out")]
fn linear_refuses_too_small_an_output() {
    let mut y = vec![0.0; 5];
    linear(&[0.0; 8], 2, &mat(), &mut y);
}

#[test]
#[should_panic(expected = "rows")]
fn the_bf16_fold_product_refuses_too_few_inputs() {
    let mut m = mat();
    m.enable_bf16_fold();
    let mut y = vec![0.0; 6];
    // Two rows of 4 inputs are 2 × 2 words; one row's worth is given.
    linear_rounded(&[0; 2], 2, &m, &mut y);
}

#[test]
#[should_panic(expected = "outputs")]
fn the_bf16_fold_product_refuses_too_small_an_output() {
    let mut m = mat();
    m.enable_bf16_fold();
    let mut y = vec![0.0; 5];
    linear_rounded(&[0; 4], 2, &m, &mut y);
}
