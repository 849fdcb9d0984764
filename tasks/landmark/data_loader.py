"""Organizer side of landmark: infer(test_data_folder) gets the folder holding images/*.png and returns
(image_id, class_id, confidence) for the images it has an answer for (image_id = file name without .png)."""
import os

from nsml import DATASET_PATH


def feed_infer(output_file, infer_func):
    folder = os.path.join(DATASET_PATH, "test", "test_data")
    rows = list(infer_func(folder))
    with open(output_file, "w", encoding="utf-8") as fh:
        fh.write("image_id,class_id,confidence\n")
        fh.writelines(f"{i},{int(c)},{float(p)}\n" for i, c, p in rows)
