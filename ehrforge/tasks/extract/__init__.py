"""The extract recipe: teacher-written synthetic clinical text -> local NER and relation extraction (see task.py)."""
