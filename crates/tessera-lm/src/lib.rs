//! LLaMA-family runtime (being written).
