//! The cryptographic formats of the service, as pure functions: the versioned symmetric
//! ciphertext blob, the canonical encoding of an encryption context bound as AAD, the
//! wrapping of key material under the root key, and asymmetric keys ([`asym`]: RSA and ECC
//! signing, RSA-OAEP encryption, ECDH). The crypto service is the only caller that ever
//! holds plaintext material; the gateway only peeks at blob headers to learn
//! which key a ciphertext names.

pub mod asym;
mod blob;
mod context;
mod import;
mod mac;
mod material;

pub use blob::{open, peek_header, seal, BlobHeader, InvalidCiphertext, BLOB_OVERHEAD};
pub use context::canonical_context;
pub use import::{
    generate_wrapping_key, unwrap_imported, wrapping_key_bits, ImportError, WrappingAlgorithm,
};
pub use mac::{generate_mac, verify_mac, MacAlgorithm};
pub use material::{
    key_material_id, random_bytes, KeyMaterial, RootKey, RootKeyError, UnwrapError,
};
