//! PyTorch `.pth` reader (placeholder until the zip/pickle reader lands).

use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::TensorMap;

/// Read a PyTorch zip checkpoint.
pub fn read_pth(path: &Path) -> Result<TensorMap> {
    Err(Error::format(path, ".pth reading is not built yet"))
}
