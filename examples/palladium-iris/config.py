# A Palladium project's config, as Palladium's tutorial builds it: unchanged for pipeforge.
# Run from this folder with PALLADIUM_CONFIG=config.py (relative paths are taken
# from the current directory, as in Palladium).
{
    'service_metadata': {
        'service_name': 'iris',
        'service_version': '0.1',
    },

    'dataset_loader_train': {
        '__factory__': 'iris.IrisRows',
        'path': 'iris.data',
        'count': 100,
    },

    'dataset_loader_test': {
        '__copy__': 'dataset_loader_train',
        'count': None,
        'skip': 100,
    },

    'model': {
        '__factory__': 'iris.model',
        'clf__C': 0.3,
    },

    'grid_search': {
        'param_grid': {
            'clf__C': [0.1, 0.3, 1.0],
        },
        'cv': 3,
    },

    'model_persister': {
        '__factory__': 'palladium.persistence.CachedUpdatePersister',
        'update_cache_rrule': {'freq': 'HOURLY'},
        'impl': {
            '__factory__': 'palladium.persistence.Database',
            'url': 'sqlite:///iris-model.db',
        },
    },

    'model_persister_export': {
        '__factory__': 'palladium.persistence.File',
        'path': 'exported/iris-{version}.pickle',
    },

    'predict_service': {
        '__factory__': 'palladium.server.PredictService',
        'mapping': [
            ('sepal length', 'float'),
            ('sepal width', 'float'),
            ('petal length', 'float'),
            ('petal width', 'float'),
        ],
    },

    'predict_decorators': [
        'iris.count_predictions',
    ],

    'alive': {
        'process_store_required': ('model',),
    },
}
