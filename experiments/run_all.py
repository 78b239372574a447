"""Re-runs every experiment and redraws its plots: `make experiments`.

Each experiment resumes: runs already in results/<name>/ are skipped, so an interrupted
`make experiments` picks up where it stopped. Pass --fresh to retrain everything (the old
results are moved aside, never deleted).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ORDER = ["l2_rate", "l1_vs_l2", "dropout_rate", "early_stopping", "data_size", "lr_vs_l2", "model_size",
         "functional_residual"]


def sh(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def main() -> None:
    fresh = ["--fresh"] if "--fresh" in sys.argv else []
    only = [a for a in sys.argv[1:] if not a.startswith("--")] or [*ORDER, "transfer_freeze"]
    mlreg = [sys.executable, "-m", "mlreg"]
    for name in only:
        t0 = time.perf_counter()
        if name == "transfer_freeze":
            sh(sys.executable, str(HERE / "transfer_freeze.py"), *fresh)
        else:
            sh(*mlreg, "run", str(HERE / f"{name}.toml"), "--quiet", *fresh)
        sh(*mlreg, "plot", f"results/{name}")
        sh(*mlreg, "compare", f"results/{name}")
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
