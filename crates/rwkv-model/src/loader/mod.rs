//! Reading checkpoint files into a [`TensorMap`](crate::tensor::TensorMap).

pub mod pth;
