"""The built-in default: tiny encoders and tiny data in the real layouts, through the real pipeline."""
