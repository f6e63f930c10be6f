"""The synchronisation protocol of v6 (kernels/decode_seesaw2.cu), checked on its executable model
(tools/seesaw2_model.py: the two warpgroups' barrier / mbarrier / TMA / wgmma order transcribed by
hand from the kernel, run under random interleavings). This tests the protocol as transcribed, not
the kernel's code: the GPU suite (tests/test_gpu.c, MLA_GPU_KERNEL=12) tests the kernel."""
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model():
    spec = importlib.util.spec_from_file_location("seesaw2_model", os.path.join(REPO, "tools", "seesaw2_model.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


@pytest.mark.parametrize("variant", ["default", "early_r1"])
def test_protocol_has_no_deadlock_or_hazard(variant):
    m = _model()
    m.VARIANT.clear()
    if variant != "default":
        m.VARIANT.add(variant)
    try:
        n, v = m.check(80)
    finally:
        m.VARIANT.clear()
    assert v is None, f"requests {v[0]}, seed {v[1]}: {v[2]}\n" + "\n".join(v[2].trace[-40:])
    assert n == 80 * len(m.SHAPES)


@pytest.mark.parametrize("mutation", sorted(_model().MUTATIONS))
def test_model_reports_each_known_protocol_bug(mutation):
    m = _model()
    m.MUT.clear()
    m.MUT.add(mutation)
    try:
        _, v = m.check(40)
    finally:
        m.MUT.clear()
    assert v is not None, f"the model did not report mutation {mutation}: {m.MUTATIONS[mutation]}"
