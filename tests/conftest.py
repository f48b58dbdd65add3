import os
import sys
from pathlib import Path

# Every process the tests start (the measuring process, `streamlit run`, CLI children) inherits one
# intra-op thread too: with two, a tiny model's forward waits on whichever core another process holds.
os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import tiny  # noqa: E402

# One intra-op thread: the test models are tiny, and on a busy 2-core machine a second thread spins
# against other processes (measured: the reference test took 155 s with 2 threads, 2.6 s with 1).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer():
    return tiny.tiny_tokenizer()


@pytest.fixture(scope="session")
def target():
    return tiny.tiny_qwen2(seed=0)


@pytest.fixture(scope="session")
def draft(target):
    return tiny.noisy_copy(target, noise=0.05)


@pytest.fixture(scope="session")
def llama_pair():
    t = tiny.tiny_llama(seed=3)
    return t, tiny.noisy_copy(t, noise=0.05, seed=4)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    """(target_dir, draft_dir): HF-format directories with the byte tokenizer."""
    return tiny.save_pair(tmp_path_factory.mktemp("tiny_models"))


SPEC_BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spec_bench_questions.jsonl"


@pytest.fixture
def spec_bench_path():
    if not SPEC_BENCH.exists():
        pytest.skip("../shared/data/spec_bench_questions.jsonl not present")
    return SPEC_BENCH
