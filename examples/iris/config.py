# ruff: noqa: B018  (a config file is one dict expression, not a module)
# The pipeforge configuration of the iris example: one Python dict.
# Relative paths (iris.data, iris-model.db) are taken from this file's
# folder, so the scripts and the server work from any directory.
{
    'service_metadata': {
        'service_name': 'iris',
        'service_version': '0.1',
    },

    'dataset_loader_train': {
        '__factory__': 'pipeforge.dataset.Table',
        'path': 'iris.data',
        'names': [
            'sepal length',
            'sepal width',
            'petal length',
            'petal width',
            'species',
        ],
        'target_column': 'species',
        'sep': ',',
        'nrows': 100,
    },

    'dataset_loader_test': {
        '__copy__': 'dataset_loader_train',
        'nrows': None,
        'skiprows': 100,
    },

    'model': {
        '__factory__': 'sklearn.linear_model.LogisticRegression',
        'C': 0.3,
        'max_iter': 1000,
    },

    'grid_search': {
        'param_grid': {
            'C': [0.1, 0.3, 1.0, 3.0],
        },
        'cv': 3,
        'verbose': 0,
        'n_jobs': 1,
    },

    'scoring': 'accuracy',

    'model_persister': {
        '__factory__': 'pipeforge.persistence.CachedUpdatePersister',
        'update_cache_rrule': {'freq': 'SECONDLY', 'interval': 2},
        'impl': {
            '__factory__': 'pipeforge.persistence.Database',
            'url': 'sqlite:///iris-model.db',
        },
    },

    'predict_service': {
        '__factory__': 'pipeforge.server.PredictService',
        'mapping': [
            ('sepal length', 'float'),
            ('sepal width', 'float'),
            ('petal length', 'float'),
            ('petal width', 'float'),
        ],
    },
}
