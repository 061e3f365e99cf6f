"""What ``scripts/train.py``, ``evaluate.py`` and ``compare.py`` run, one step per module.

Each module imports only modules listed above it (no cycle):

    names          every name written in a run directory (--model_dir)
    console        what the scripts print: TensorFlow's start-up lines off, ours plain
    cli            the scripts' one-line errors, exit codes, --help and next-step commands
    progress       the per-epoch progress bar
    lock           one process at a time in a run directory
    artifacts      history, curves and checkpoints, each written atomically
    manifest       manifest.json: which epoch the run directory's files belong to
    keras_file     what a Keras model file may hold (sizes, nesting, code), checked
                   before Keras reads it; .keras archives and legacy .h5 told apart
    keras_model    the Keras model a run trains (built, or --model_file), its optimizer,
                   loss and twin; model files loaded in safe mode, .keras files saved
    backend        what a backend is: the ``Backend`` protocol
    backend_tf     --backend=tensorflow: the Keras model in the custom training loop
    backend_numpy  --backend=numpy: its numpy_ref twin in the same epoch loop
    memory         a built-in model's weights and optimizer slots, checked against the
                   machine's memory before it is built
    backends       the ``--backend`` registry
    config         the settings (``RunConfig``), each declared once; train.py's flags
    rundir         a run directory: locked, started, resumed, saved, checked
    experiment     a training run end to end (train.py)
    evaluation     a finished run's test scores on either backend (evaluate.py)
    comparison     a saved Keras model against its NumPy twin (compare.py)
"""
