# examples/iris/config.py: one Python dict, as in Palladium (config.yaml says the same in YAML).
# Relative paths (iris.data, iris-model.db) are taken from this file's folder.
{
    'service_metadata': {'service_name': 'iris', 'service_version': '0.1'},
    'dataset_loader_train': {
        '__factory__': 'pipeforge.dataset.Table',
        'path': 'iris.data', 'sep': ',', 'nrows': 100, 'target_column': 'species',
        'names': ['sepal length', 'sepal width', 'petal length', 'petal width', 'species'],
    },
    'dataset_loader_test': {'__copy__': 'dataset_loader_train', 'nrows': None, 'skiprows': 100},
    'model': {'__factory__': 'sklearn.linear_model.LogisticRegression', 'C': 0.3, 'max_iter': 1000},
    'scoring': 'accuracy',
    'grid_search': {'param_grid': {'C': [0.1, 0.3, 1.0, 3.0]}, 'cv': 3},
    'model_persister': {
        '__factory__': 'pipeforge.persistence.CachedUpdatePersister',
        'update_cache_rrule': {'freq': 'SECONDLY', 'interval': 2},
        'impl': {'__factory__': 'pipeforge.persistence.Database', 'url': 'sqlite:///iris-model.db'},
    },
    'predict_service': {
        '__factory__': 'pipeforge.server.PredictService',
        'mapping': [('sepal length', 'float'), ('sepal width', 'float'),
                    ('petal length', 'float'), ('petal width', 'float')],
    },
}
