"""Tests for tf_ganimation/_deprecated_paths.py: every public name of the 0.1 flat modules still
resolves, from its old path, to the object at its new one, with a DeprecationWarning."""

import importlib
import textwrap
import warnings

import pytest

from tf_ganimation import _deprecated_paths

# The public names (classes, functions, UPPER_CASE constants) of each module of tf_ganimation 0.1.
OLD_NAMES = {
    'tf_ganimation.action_units': ('NUM_AUS', 'MAX_RAW_INTENSITY', 'au_index', 'normalize_intensities', 'from_mapping', 'parse_aus', 'preset', 'parse_expression', 'interpolate', 'parse_expression_sequence', 'interpolate_keyframes', 'describe_vocabulary'),
    'tf_ganimation.animate': ('MODEL_KINDS', 'PHOTO_EXTENSIONS', 'ANIMATION_EXTENSIONS', 'SWEEP_INTENSITIES', 'SHEET_HEADER', 'SHEET_LABEL_WIDTH', 'MAX_FRAMES', 'NoFaceError', 'EditModel', 'KerasEditModel', 'SavedModelEditModel', 'TFLiteEditModel', 'load_model', 'EditorConfig', 'FaceCrop', 'whole_image_transform', 'Editor', 'EditJob', 'run'),
    'tf_ganimation.annotations': ('IMAGE_EXTENSIONS', 'WRONG_AU_COUNT', 'NON_FINITE_AUS', 'AUS_OUT_OF_RANGE', 'UNREADABLE_AU_FILE', 'NO_FACE_IN_AU_FILE', 'UnsafePickleError', 'AnnotationError', 'RestrictedUnpickler', 'restricted_loads', 'load_aus_pickle', 'image_id', 'read_id_list', 'check_raw_aus', 'read_openface_csv'),
    'tf_ganimation.checkpoints': ('KILL_AT_VARIABLE', 'WORKER_CHECKPOINT_DIR', 'CheckpointError', 'make_manager', 'recorded', 'restore_latest', 'remove_unfinished', 'CheckpointWriter', 'kill_point', 'kill_self'),
    'tf_ganimation.config': ('ModelConfig', 'LossConfig', 'OptimizerConfig', 'DataConfig', 'RunConfig', 'Config'),
    'tf_ganimation.data': ('preprocess_image', 'random_target_aus', 'make_training_dataset', 'make_eval_dataset', 'fixed_samples', 'steps_per_epoch'),
    'tf_ganimation.evaluation': ('SWEEP_INTENSITIES', 'SHEET_MIN_CELL', 'CHANGED_AU_THRESHOLD', 'CHANGED_PIXEL_THRESHOLD', 'generator_edit', 'rendering_edit', 'to_uint8_scale', 'pixel_metrics', 'attention_statistics', 'region_metrics', 'SyntheticEdits', 'render_edits', 'synthetic_metrics', 'score_edits', 'SyntheticProbe', 'training_probe', 'consistency_metrics', 'ALIGNMENT_AUS', 'critic_gradient', 'au_gradient_alignment', 'evaluation_sheet', 'evaluate_run'),
    'tf_ganimation.export': ('METADATA_FILE', 'WARMUP_FILE', 'DEFAULT_SIGNATURE', 'ENCODED_SIGNATURE', 'ANIMATE_SIGNATURE', 'DESCRIBE_SIGNATURE', 'SIGNATURES', 'MAX_FRAMES', 'METADATA_FORMAT_VERSION', 'VersionExistsError', 'export_generator', 'export_from_workdir', 'next_version', 'load_metadata', 'build_metadata', 'ServingModule', 'write_warmup_requests'),
    'tf_ganimation.face': ('KEYPOINT_NAMES', 'FACE_CHOICES', 'CROP_MARGIN', 'NoFaceError', 'DetectorConfig', 'Face', 'package_weight_paths', 'FaceDetector', 'pick_faces', 'CropTransform', 'align_face', 'crop_face', 'crop_photo', 'paste_back', 'face_region'),
    'tf_ganimation.gpu_compatibility': ('MAX_RANK', 'UnsupportedOperator', 'GpuCompatibilityError', 'unsupported_operators', 'require_gpu_compatible', 'operator_counts'),
    'tf_ganimation.inventory': ('RESOLVED_FORMATS', 'MISSING_IMAGE', 'NO_AUS', 'EMPTY_FILE', 'NOT_AN_IMAGE', 'UNSUPPORTED_IMAGE_FORMAT', 'CORRUPT_IMAGE', 'TOO_MANY_PIXELS', 'MAX_IMAGE_PIXELS', 'DatasetNotFoundError', 'EmptyDatasetError', 'DataSummary', 'Split', 'Examples', 'detect_format', 'load_examples', 'check_image_file', 'check_image_files'),
    'tf_ganimation.layout': ('IMAGES_FOLDER', 'AUS_PICKLE', 'OPENFACE_FOLDER', 'ID_LISTS', 'HASH_SPLIT_TEST_PERCENT', 'split_of'),
    'tf_ganimation.litert': ('INPUT_NAMES', 'OUTPUT_NAMES', 'TFLiteGenerator'),
    'tf_ganimation.losses': ('wasserstein_critic_loss', 'wasserstein_generator_loss', 'gradient_penalty', 'au_regression_loss', 'cycle_consistency_loss', 'attention_mean_loss', 'attention_total_variation_loss'),
    'tf_ganimation.model': ('LinearDecaySchedule', 'GANimation', 'GuardedAdam', 'make_checkpoint', 'make_optimizer'),
    'tf_ganimation.networks': ('InstanceNormalization', 'ResidualBlock', 'Generator', 'Critic', 'compose', 'build_generator', 'build_critic', 'edit_unit_range'),
    'tf_ganimation.photos': ('MAX_PIXELS', 'FORMATS', 'PhotoError', 'read_photo'),
    'tf_ganimation.prepare': ('JOURNAL_FILE', 'INFO_FILE', 'PHOTO_EXTENSIONS', 'CROP_FORMATS', 'SEVERAL_FACES_CHOICES', 'PHOTOS_PER_WORKER', 'KEPT', 'UNREADABLE_PHOTO', 'NO_FACE', 'SEVERAL_FACES', 'NO_AU_FILE', 'DUPLICATE_ID', 'PrepareConfig', 'PrepareSummary', 'prepare_photos', 'list_photos', 'read_journal', 'process_photo', 'summary_counts', 'Progress'),
    'tf_ganimation.synthetic': ('HAIR_STYLES', 'RGB', 'Identity', 'sample_identity', 'face_geometry', 'render_face'),
    'tf_ganimation.synthetic_dataset': ('IDENTITIES_FILE', 'sample_aus', 'sample_raw_aus', 'DatasetSummary', 'make_dataset', 'load_identities', 'load_split'),
    'tf_ganimation.tflite': ('QUANTIZATIONS', 'PARITY_TOLERANCES', 'SIGNATURE_KEY', 'INPUT_DESCRIPTIONS', 'OUTPUT_DESCRIPTIONS', 'ConversionConfig', 'ConversionResult', 'ParityError', 'edit_function', 'load_saved_model_edit', 'fixed_batch_function', 'convert_function', 'convert_generator', 'convert_saved_model', 'convert_workdir', 'parity_inputs', 'measure_parity', 'model_metadata', 'latency_ms', 'benchmark'),
    'tf_ganimation.tfrecords': ('IMAGE_KEY', 'ID_KEY', 'AUS_KEY', 'AUS_NORMALIZED_KEY', 'INFO_FILE', 'SPLITS', 'FORMAT_NAME', 'TARGET_SHARD_BYTES', 'UNPARSEABLE_RECORD', 'EMPTY_IMAGE', 'NOT_AN_IMAGE', 'CORRUPT_SHARD', 'UNREADABLE_IMAGE_AT_CONVERSION', 'shard_name', 'list_shards', 'read_info', 'serialize_example', 'parse_example', 'RecordScan', 'scan_records', 'write_dataset'),
    'tf_ganimation.training': ('NonFiniteLossError', 'Schedule', 'make_schedule', 'make_strategy', 'task_of', 'is_chief', 'build_gan', 'current_step', 'load_checkpoint', 'sample_grid', 'NonFiniteGuard', 'TrainingMonitor', 'make_step_function', 'train'),
    'tf_ganimation.workdir': ('CONFIG_FILE', 'FLAGS_FILE', 'CHECKPOINT_DIR', 'GENERATOR_WEIGHTS', 'CRITIC_WEIGHTS', 'SAMPLES_DIR', 'LOGS_DIR', 'atomic_write_text', 'save_config', 'load_config', 'load_generator', 'load_critic'),
}

# 0.1 names with no successor, and why.
REMOVED = {
    ("tf_ganimation.checkpoints", "KILL_AT_VARIABLE"): "a test hook; tests/training/killing_train.py now",
    ("tf_ganimation.checkpoints", "kill_point"): "a test hook; tests/training/killing_train.py now",
    ("tf_ganimation.checkpoints", "kill_self"): "a test hook; tests/training/killing_train.py now",
    ("tf_ganimation.training", "build_gan"): "model.ganimation.make_gan(config, total_steps, decay_steps)",
    ("tf_ganimation.tflite", "edit_function"): "model.edit_model.KerasEditModel runs a generator",
    ("tf_ganimation.tflite", "load_saved_model_edit"): "export.backends.SavedModelEditModel",
    ("tf_ganimation.evaluation", "generator_edit"): "an EditModel (unit range) replaces the [-1, 1] edit function",
    ("tf_ganimation.evaluation", "rendering_edit"): "evaluation.synthetic_edits.TrueRendering, an EditModel",
    ("tf_ganimation.evaluation", "to_uint8_scale"): "core.pixels.model_to_255",
}


def _old_names():
    for module, names in OLD_NAMES.items():
        for name in names:
            if (module, name) not in REMOVED:
                yield module, name


@pytest.mark.parametrize("module, name", list(_old_names()), ids=lambda value: value)
def test_every_old_name_resolves_with_a_deprecation_warning(module, name):
    package, _, attribute = module.rpartition(".")
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{name} is tf_ganimation\.\w+\.\w+"):
        value = getattr(importlib.import_module(module), name)
    renamed = _deprecated_paths.RENAMED.get((module, name))
    new_module, new_name = renamed if renamed else (None, name)
    homes = _deprecated_paths.MOVED.get(module) or _deprecated_paths.SHADOWED[module]
    new_module = new_module or next(home for home in homes if hasattr(importlib.import_module(home), name))
    assert value is getattr(importlib.import_module(new_module), new_name)


def test_from_import_of_an_old_module_works_and_a_missing_name_is_an_attribute_error():
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        exec(textwrap.dedent("""
            from tf_ganimation import networks, training
            generator_class = networks.Generator
            train = training.train
        """), namespace)
    from tf_ganimation.model.networks import Generator
    from tf_ganimation.training.trainer import train

    assert namespace["generator_class"] is Generator and namespace["train"] is train
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        importlib.import_module("tf_ganimation.networks").no_such_name


def test_submodules_of_a_shadowing_subpackage_import_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from tf_ganimation.model import layers, networks  # noqa: F401
        from tf_ganimation.training import checkpoints  # noqa: F401
