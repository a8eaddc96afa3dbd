import pytest

from tests.factories import make_music_lab, music_dataset


@pytest.fixture(scope="session")
def music_data_dir(tmp_path_factory):
    return music_dataset(tmp_path_factory.mktemp("music-hidden"))


@pytest.fixture
def graded_lab(course, music_data_dir):
    from labs.management.commands.register_dataset import register_dataset

    return make_music_lab(course, dataset=register_dataset(music_data_dir))
