//! PyTorch `.pth` reader (placeholder, being written).
