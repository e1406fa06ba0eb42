"""Stage Batch: a model's predictions for every row of a CSV or Parquet file, streamed in chunks.

    options.py      BatchOptions (chunk size, what bad rows do, threads), BatchError, the output's
                    format from its extension and where the rejects file goes
    reading.py      the input as a stream of chunks, each row with its line in the file (pyarrow's
                    streaming CSV reader, Parquet's row-group batches)
    rows.py         what the model takes (types, missing values, known categories) and the check
                    of a chunk's rows against it: typed columns, and a Reject with its reason for
                    each row that does not fit
    predictions.py  the ONNX session and the columns it gives: label, a probability per class,
                    or the value; rows the model itself refuses are found and set apart
    writing.py      the predictions file (CSV or Parquet) and the rejects file, each written whole
                    or not at all
    run.py          run_batch: read, check, predict and write, chunk after chunk, handing out a
                    BatchProgress as it goes and a BatchSummary at the end
"""
