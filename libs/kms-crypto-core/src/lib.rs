//! Ciphertext blob format, canonical encryption context and root-key wrapping
