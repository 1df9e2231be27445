"""The stages of a study: base model, layer protocol (Tables 1, 4), input protocol (Tables 2, 5)."""
