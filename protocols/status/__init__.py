"""Status's perfect-forward-secrecy protocol (X3DH bundles, a Double Ratchet over secp256k1) as status-go runs it."""
