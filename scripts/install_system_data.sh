#!/usr/bin/env bash
# Installs the Debian packages trustbench reads or drives: dataset-fashion-mnist (Fashion-MNIST's idx files,
# /usr/share/datasets/fashion-mnist) and chromium + chromium-driver (tests/test_report_browser.py opens
# report.html in it). Needs root; without it, or offline, says what is skipped and still succeeds:
# trustbench falls back to its next data sources and the browser test skips, saying why.
set -u
target=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
has_browser() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }
if [[ -f $target ]] && has_browser; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  [[ -f $target ]] || echo "skipping Debian package dataset-fashion-mnist (needs root and apt-get);" \
    "Fashion-MNIST will be read from \$TRUSTBENCH_DATA/fashion_mnist or fetched by" \
    "'trustbench data fetch fashion_mnist'" >&2
  has_browser || echo "skipping Debian packages chromium chromium-driver (needs root and apt-get);" \
    "tests/test_report_browser.py will be skipped" >&2
  exit 0
fi
apt-get update -qq || echo "apt-get update failed (offline?); trying the package lists already on disk" >&2
[[ -f $target ]] || apt-get install -y -qq dataset-fashion-mnist >/dev/null \
  || echo "apt-get could not install dataset-fashion-mnist; Fashion-MNIST falls back to the data dir or download" >&2
has_browser || apt-get install -y -qq chromium chromium-driver >/dev/null \
  || echo "apt-get could not install chromium chromium-driver; tests/test_report_browser.py will be skipped" >&2
exit 0
