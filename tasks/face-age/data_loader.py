"""Organizer side of face-age: infer(test_data_folder) gets the folder holding images/*.png and returns one age
class (0-4) per image, in sorted file-name order (or a dict file_name -> class)."""
import os

from nsml import DATASET_PATH


def feed_infer(output_file, infer_func):
    folder = os.path.join(DATASET_PATH, "test", "test_data")
    names = sorted(os.listdir(os.path.join(folder, "images")))
    predictions = infer_func(folder)
    if isinstance(predictions, dict):
        rows = [(n, predictions[n]) for n in names if n in predictions]
    else:
        rows = list(zip(names, list(predictions)))
    with open(output_file, "w", encoding="utf-8") as fh:
        fh.write("file_name,age_class\n")
        fh.writelines(f"{n},{int(c)}\n" for n, c in rows)
