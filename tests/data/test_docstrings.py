import doctest

import pytest

from tsm_keras.data import labels, sampling, skips


@pytest.mark.parametrize("module", [labels, sampling, skips], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
