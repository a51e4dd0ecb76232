# Palladium's R example: a dataset loader and a model trainer written in R.
# Needs the randomForest package (Debian: r-cran-randomforest).
library(randomForest)

# The iris data that comes with R: four measurements and the species.
dataset <- function() {
    x <- iris[, 1:4]
    y <- as.factor(iris[, 5])
    list(x, y)
}

train.randomForest <- function(x, y) {
    randomForest(x, as.factor(y))
}
