"""tf_ganimation/export/warmup.py: the PredictionLog records TF Serving replays, read back."""

import numpy as np
import tensorflow as tf

from tf_ganimation.export import warmup


def test_one_predict_log_per_signature_in_order_with_its_inputs(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    image = np.arange(12, dtype=np.float32).reshape([1, 2, 2, 3]) / 12
    aus = np.full([1, 17], 0.25, np.float32)
    path = warmup.write_prediction_logs(tmp_path / "assets.extra" / "tf_serving_warmup_requests",
                                        {"estimate_aus": {"image": image}, "describe_aus": {"aus": aus}},
                                        model_name="faces")
    assert path == tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(str(path))]
    requests = [log.predict_log.request for log in logs]
    assert [(request.model_spec.name, request.model_spec.signature_name) for request in requests] == [
        ("faces", "estimate_aus"), ("faces", "describe_aus")]
    np.testing.assert_array_equal(tf.make_ndarray(requests[0].inputs["image"]), image)
    np.testing.assert_array_equal(tf.make_ndarray(requests[1].inputs["aus"]), aus)
    assert list(requests[0].inputs) == ["image"]
