"""One-class novelty detection: methods trained on one class's images, scoring how unlike it an input is."""
