//! The public products check their buffers in release builds: a caller that passes too few
//! inputs or outputs gets a panic naming the buffer, never a write out of bounds. The matrices
//! check their data against their dimensions when made, and the dimensions cannot change after.

use rwkv_model::linalg::{Kind, Mat, Source, linear, linear_rounded};
use rwkv_model::tensor::DType;

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
#[should_panic(expected = "inputs are rows × cols")]
fn linear_refuses_a_row_count_whose_product_overflows() {
    // (2⁶² + 1) rows of 4 wrap to 4 values, the length of both buffers.
    let m = Mat::new(4, 4, vec![0.0; 16]);
    let mut y = vec![0.0; 4];
    linear(&[0.0; 4], (1 << 62) + 1, &m, &mut y);
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

#[test]
fn a_matrix_reports_the_dimensions_it_was_made_with() {
    let m = mat();
    assert_eq!((m.rows(), m.cols()), (3, 4));
}

#[test]
#[should_panic(expected = "weights are rows × cols")]
fn a_matrix_refuses_data_of_another_length() {
    Mat::new(3, 4, vec![0.0; 11]);
}

#[test]
#[should_panic(expected = "weights are cols × rows")]
fn a_matrix_refuses_dimensions_whose_product_overflows() {
    // 2⁶³ · 2 wraps to 0, the length of the data: the check must not wrap with it.
    Mat::from_transposed(1 << 63, 2, Vec::new());
}

#[test]
fn packed_and_quantized_matrices_refuse_data_of_another_length() {
    let bytes = [0u8; 22];
    let src = Source {
        bytes: &bytes,
        dtype: DType::BF16,
        n: 3,
        k: 4,
        input_major: false,
    };
    for kind in [None, Some(Kind::Bf16), Some(Kind::I8)] {
        let made = std::panic::catch_unwind(|| Mat::from_source(&src, kind));
        assert!(made.is_err(), "{kind:?}: 11 values taken for 3 × 4");
    }
    let q = rwkv_model::linalg::QuantMat::new(2, 32, rwkv_model::loader::Quant::Q8_0, vec![0; 35]);
    assert!(q.is_err(), "Q8_0 takes 34 bytes a block of 32");
}
